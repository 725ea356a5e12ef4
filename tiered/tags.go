package tiered

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/remote"
)

// Limits of tags, checked at every call that takes or decides tags.
const (
	// MaxTags is the most tags one value may carry.
	MaxTags = remote.MaxTags
	// MaxTagLen is the longest tag, in bytes.
	MaxTagLen = remote.MaxTagLen
	// MaxInvalidateTags is the most tags one InvalidateTags call takes.
	MaxInvalidateTags = 1024
)

// ErrBadTag is returned (wrapped) for an empty tag, a tag longer than
// MaxTagLen, or more tags than allowed on one value or in one call.
// Nothing is written when a call returns it.
var ErrBadTag = errors.New("tiered: bad tag")

// A tag's id names it in Redis (its stamp key, [remote.Store.TagKey]), on
// the bus and in the node's table: "t:" and a tag of the caller's, "g:"
// and an encoded group name (the implicit tag of Group.Clear), or "n"
// (the implicit tag of Cache.Clear, carried by every entry).
const nsTag = "n"

func userTag(t string) string        { return "t:" + t }
func groupTag(encoded string) string { return "g:" + encoded }

// checkTags validates the tags of one value (or of one call when limit is
// MaxInvalidateTags).
func checkTags(tags []string, limit int) error {
	if len(tags) > limit {
		return fmt.Errorf("%w: %d tags, more than %d", ErrBadTag, len(tags), limit)
	}
	for _, t := range tags {
		if t == "" {
			return fmt.Errorf("%w: empty tag", ErrBadTag)
		}
		if len(t) > MaxTagLen {
			return fmt.Errorf("%w: %q is %d bytes, more than %d", ErrBadTag, t[:16]+"...", len(t), MaxTagLen)
		}
	}
	return nil
}

// groupOf returns the encoded group name of key.
func groupOf(key string) string { return key[:max(strings.IndexByte(key, ':'), 0)] }

// tagIDs appends to ids the ids of the tags an entry of group carries.
func (c *Cache) tagIDs(ids []string, group string, tags []string) []string {
	ids = append(ids, nsTag, c.groupTagsOf(group).id)
	for _, t := range tags {
		ids = append(ids, userTag(t))
	}
	return ids
}

// tagsValid reports whether an entry of key that began at begin and
// carries tags is still valid: from the table when it knows every tag and
// the bus keeps it current, else from the stamps in Redis (one round trip,
// after which the table knows them).
func (c *Cache) tagsValid(ctx context.Context, key string, begin int64, tags []string) (bool, error) {
	if c.noTagCheck {
		return true, nil
	}
	group := groupOf(key)
	v := c.tags.check(group, begin, tags)
	if v == tagsInvalid || v == tagsValid && (c.tags.trusted.Load() || c.store == nil) {
		return v == tagsValid, nil
	}
	ids := c.tagIDs(make([]string, 0, 2+len(tags)), group, tags)
	ep := c.tags.epochNow()
	stamps, err := c.store.TagStamps(ctx, ids)
	if err != nil {
		return false, err
	}
	c.tags.learn(ep, ids, stamps)
	for _, s := range stamps {
		if c.tags.stale(s, begin) {
			return false, nil
		}
	}
	return true, nil
}

// recheckL1 is the L1's Options.Recheck: an entry is served while the
// table knows its tags and none was invalidated since its load began. A
// tag the table does not know (it was reset) makes the entry miss, except
// while L1 is degraded, when only young entries are served anyway.
func (c *Cache) recheckL1(key string, begin int64, tags []string) bool {
	if c.noTagCheck {
		return true
	}
	switch c.tags.check(groupOf(key), begin, tags) {
	case tagsValid:
		return true
	case tagsUnknown:
		return c.l1 != nil && c.l1.Degraded()
	}
	return false
}

// localMicros is the time, in microseconds, that stands for Redis's TIME
// without Redis: the L1 clock's.
func (c *Cache) localMicros() int64 { return c.clock.Now() / int64(time.Microsecond) }

// stampTTL is how long a tag's stamp stays in Redis: until every value
// that began before it has left Redis (values live at most the longest
// life this node's groups give a record, TTL with FailSafe and MaxStale,
// see Group.noteLife, filled at most LoadTimeout after their load began).
// A fleet whose nodes define the same groups keeps every stamp long enough.
func (c *Cache) stampTTL() time.Duration {
	return c.maxTTL() + c.opts.LoadTimeout + c.opts.LeaseTTL
}

// InvalidateTags invalidates, on every node and in both tiers, every entry
// that carried one of tags when it was loaded (see GroupOptions.Tags):
// such entries are not served from then on, and a load that began before
// this call never installs its result. In Redis it is one write per tag,
// whatever the number of entries: each tag's stamp becomes the Redis time
// (see [Options.TagClockSkew]), and the entries leave Redis lazily, when a
// reader finds them invalid or their TTL ends. This node's table of stamps
// is updated before it returns; the other nodes' through the bus (late
// reads are bounded by the bus, as for [Cache.Invalidate]).
//
// An empty tag, one longer than MaxTagLen, or more than MaxInvalidateTags
// tags is an error wrapping ErrBadTag, and nothing is invalidated. If Redis
// or the publish fails, InvalidateTags returns the error, flushes this
// node's L1 when Redis failed, and retries in the background like
// [Cache.Invalidate].
func (c *Cache) InvalidateTags(ctx context.Context, tags ...string) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	if err := checkTags(tags, MaxInvalidateTags); err != nil {
		return err
	}
	if len(tags) == 0 {
		return nil
	}
	ids := make([]string, len(tags))
	for i, t := range tags {
		ids[i] = userTag(t)
	}
	// The loads in flight may carry the tags: readers from now on start
	// their own.
	c.flights.forgetMatching(func(string) bool { return true })
	return c.invalidate(ctx, invalidation{tags: ids}, true)
}

// Clear invalidates every entry of the namespace, on every node and in
// both tiers, like [Cache.InvalidateTags] of a tag that every entry
// carries: one write in Redis, no SCAN; the entries leave Redis lazily.
func (c *Cache) Clear(ctx context.Context) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	c.flights.forgetMatching(func(string) bool { return true })
	return c.invalidate(ctx, invalidation{tags: []string{nsTag}}, true)
}

// Clear invalidates every entry of the group, on every node and in both
// tiers, like [Cache.InvalidateTags] of a tag that every entry of the
// group carries: one write in Redis, no SCAN; other groups keep theirs.
func (g *Group[V]) Clear(ctx context.Context) error {
	if err := g.c.checkOpen(); err != nil {
		return err
	}
	g.c.flights.forgetMatching(func(k string) bool { return strings.HasPrefix(k, g.prefix) })
	return g.c.invalidate(ctx, invalidation{tags: []string{g.tagID()}}, true)
}

// tagID is the id of the group's implicit tag.
func (g *Group[V]) tagID() string { return groupTag(g.prefix[:len(g.prefix)-1]) }

// stampTags is the tag part of invalidate: the stamps in Redis, then this
// node's table, then the bus.
func (c *Cache) stampTags(ctx context.Context, ids []string) error {
	var stamps []int64
	if c.store != nil {
		var err error
		stamps, err = c.store.StampTags(ctx, ids, c.stampTTL())
		if err != nil {
			c.flushL1() // nothing this node holds may carry them
			return err
		}
	} else {
		now := c.localMicros()
		stamps = make([]int64, len(ids))
		for i := range stamps {
			stamps[i] = now
		}
	}
	c.applyTags(ids, stamps)
	if c.bus == nil {
		return nil
	}
	items := make([]string, len(ids))
	for i, id := range ids {
		items[i] = strconv.FormatInt(stamps[i], 10) + ":" + id
	}
	return c.bus.Publish(ctx, bus.KindTags, items...)
}

// applyTags records invalidations of tags in the table, then makes L1
// recheck its entries.
func (c *Cache) applyTags(ids []string, stamps []int64) {
	c.tags.apply(ids, stamps)
	if c.l1 != nil {
		c.l1.TagsChanged()
	}
}

// maxStampAhead is how far ahead of this node's clock (with TagClockSkew)
// a tag stamp from the bus may be: Redis's clock and the nodes' differ by
// less on any fleet whose clocks are kept in sync. A stamp past it costs a
// flush (see applyTagMessage).
const maxStampAhead = 5 * time.Second

// applyTagMessage applies a KindTags message from another node.
func (c *Cache) applyTagMessage(items []string) {
	if c.noTagApply {
		return
	}
	ids := make([]string, 0, len(items))
	stamps := make([]int64, 0, len(items))
	// A stamp is Redis's TIME when the tags were invalidated: one ahead of
	// this node's clock by more than maxStampAhead is forged (it would
	// invalidate every value until then), or this node's clock is behind
	// Redis's. Either way it is not applied: the node forgets the stamps it
	// knows and flushes L1, then learns them again from Redis, where the
	// real ones are. A forged message costs one flush; a real one is not
	// lost.
	latest := time.Now().Add(maxStampAhead + c.opts.TagClockSkew).UnixMicro()
	ahead := false
	for _, it := range items {
		s, id, ok := strings.Cut(it, ":")
		n, err := strconv.ParseInt(s, 10, 64)
		if !ok || err != nil || id == "" || n <= 0 {
			c.stats.record(c.rec, Event{Kind: EventBusMalformed, Err: fmt.Errorf("tiered: tag item %q", it)})
			continue
		}
		if n > latest {
			c.stats.record(c.rec, Event{Kind: EventBusMalformed, Err: fmt.Errorf("tiered: tag item %q: stamp ahead of this node's clock; tags relearnt from Redis", it)})
			ahead = true
			continue
		}
		ids, stamps = append(ids, id), append(stamps, n)
	}
	if ahead {
		// The flush stands for the invalidation the stamp may be: loads in
		// flight may have read what it removes, so no later read joins them.
		c.resetTags(true)
		c.flushL1()
		c.detachLoads()
	}
	c.flights.forgetMatching(carriersOf(ids))
	c.applyTags(ids, stamps)
}

// carriersOf returns a match of the keys whose loads in flight may carry
// one of the tags ids: a group's keys for a group's tag, every key for any
// other (a load's tags are known only when it ends).
func carriersOf(ids []string) func(string) bool {
	var prefixes []string
	for _, id := range ids {
		g, ok := strings.CutPrefix(id, "g:")
		if !ok {
			return func(string) bool { return true }
		}
		prefixes = append(prefixes, g+":")
	}
	return func(k string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				return true
			}
		}
		return false
	}
}

// resetTags forgets every stamp this node knows (a message may have been
// lost); trusted says whether the bus is healthy from now on.
func (c *Cache) resetTags(trusted bool) {
	c.tags.keep.Store(false)
	c.tags.trusted.Store(false)
	// The tests that switch the flush off (noFlush) keep the table too.
	reset := !c.noTagReset && !c.noFlush.Load()
	if reset {
		c.tags.reset()
	}
	if trusted {
		c.tags.keep.Store(true)
		c.tags.trusted.Store(true)
	}
	if reset && c.l1 != nil {
		c.l1.TagsChanged()
	}
}

// tagsOf returns the tags of a value of id, as the group's Tags decides
// (checked, and copied: the caller's slice is not kept).
func (g *Group[V]) tagsOf(id string, v V) ([]string, error) {
	if g.tagFn == nil {
		return nil, nil
	}
	tags := g.tagFn(id, v)
	if err := checkTags(tags, MaxTags); err != nil {
		return nil, fmt.Errorf("tiered: tags of %q: %w", g.Key(id), err)
	}
	return slices.Clone(tags), nil
}

// stampKeys returns the keys of the stamps a fill of key with tags checks
// in its script; none on a cluster, where they live in other slots.
func (c *Cache) stampKeys(key string, tags []string) []string {
	if c.store.Clustered() || c.noTagCheck {
		return nil
	}
	group := groupOf(key)
	keys := make([]string, 0, 2+len(tags))
	keys = append(keys, c.nsStampKey, c.groupTagsOf(group).stampKey)
	for _, t := range tags {
		keys = append(keys, c.store.TagKey(userTag(t)))
	}
	return keys
}

// groupTags is a group's implicit tag: its id and its stamp key.
type groupTags struct{ id, stampKey string }

// groupTagsOf returns group's implicit tag, made once per group.
func (c *Cache) groupTagsOf(group string) *groupTags {
	if t, ok := c.groupStamps.Load(group); ok {
		return t.(*groupTags)
	}
	t := &groupTags{id: groupTag(group)}
	if c.store != nil {
		t.stampKey = c.store.TagKey(t.id)
	}
	c.groupStamps.Store(group, t)
	return t
}

// loadBegin returns the Redis time before a load of key begins (0, which
// is before every invalidation, when Redis cannot tell).
func (c *Cache) loadBegin(ctx context.Context, key string) int64 {
	if c.store == nil {
		return c.localMicros()
	}
	t, err := c.store.Time(ctx, key)
	if err != nil {
		return 0
	}
	return t
}

// tagFunc checks GroupOptions.Tags for a group of V.
func tagFunc[V any](name string, f any) (func(string, V) []string, error) {
	if f == nil {
		return nil, nil
	}
	fn, ok := f.(func(string, V) []string)
	if !ok {
		var v V
		return nil, fmt.Errorf("tiered: group %q: Tags is a %T, not a func(id string, v %T) []string", name, f, v)
	}
	return fn, nil
}
