package local

// InjectRaw stores e in Ristretto under the hash of key, bypassing the index,
// as a hash collision between key and e.Key would.
func InjectRaw[V any](c *Cache[V], key string, e *Entry[V]) {
	e.epoch = c.epoch.Load()
	e.hash = c.hash(key, "")
	c.rc.Set(e.hash, e, 1)
}

// Dead reports whether e is marked dead.
func Dead[V any](e *Entry[V]) bool { return e.dead.Load() }
