package tiered

// onBreaker receives the changes of the Redis breakers (remote.Options
// OnBreaker): it counts them and logs them, with the endpoint and the
// failure that opened the breaker.
func (c *Cache) onBreaker(endpoint string, open bool, err error) {
	if open {
		c.stats.record(c.rec, Event{Kind: EventBreakerOpen, Err: err})
		c.log.Warn("tiered: redis breaker open; calls to the endpoint fail fast until a probe succeeds",
			"endpoint", endpoint, "err", err, "cooldown", c.opts.BreakerCooldown)
		return
	}
	c.stats.record(c.rec, Event{Kind: EventBreakerClose})
	c.log.Info("tiered: redis breaker closed; calls to the endpoint resume", "endpoint", endpoint)
}
