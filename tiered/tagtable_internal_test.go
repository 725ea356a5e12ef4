package tiered

import (
	"strconv"
	"testing"
)

// TestTagTableBounded: the stamps of group tags that the bus brings (any
// publisher on the channel may name groups this node never had) are
// bounded like the stamps of user tags.
func TestTagTableBounded(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 * maxTagTable {
		c.applyTagMessage([]string{"1:g:" + strconv.Itoa(i)})
	}
	c.tags.mu.RLock()
	defer c.tags.mu.RUnlock()
	if n, m := len(c.tags.groups), len(c.tags.users); n > maxTagTable || m > maxTagTable {
		t.Fatalf("after %d tag messages: %d group stamps and %d user stamps kept; want at most %d of each", 3*maxTagTable, n, m, maxTagTable)
	}
}
