package local

// Stored returns how many entries Set and SetIf have handed to Ristretto
// since New (a SetIf vetoed by an invalidation, or a Set that Ristretto
// dropped at once because its Set buffer was full, does not count). Each
// stored entry is then either admitted or refused by the admission policy
// (Options.OnReject), so once [Cache.Wait] returns, Stored minus the
// rejections counts the admitted entries. It only grows.
func (c *Cache[V]) Stored() uint64 { return c.stored.Load() }

// Cost returns the sum of the costs of the entries Ristretto holds: the
// Sets it has applied (see [Cache.Wait]) less what it evicted, rejected or
// deleted. Entries of an earlier epoch count until they leave. With
// Options.ChargeMemory, it is in bytes: each entry counts its Item.Cost
// plus [Cache.EntryBytes], and the part of MaxCost taken by the fixed
// structures counts too. It is 0 after Close.
func (c *Cache[V]) Cost() int64 {
	if c.closed.Load() {
		return 0
	}
	return c.fixed + c.rc.MaxCost() - c.rc.RemainingCost()
}

// MaxCost returns the capacity: Options.MaxCost, or its default.
func (c *Cache[V]) MaxCost() int64 { return c.maxCost }
