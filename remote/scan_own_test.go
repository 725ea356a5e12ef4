package remote_test

import (
	"context"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/remote"
)

// TestPatternSparesOwnKeys: a pattern that matches every key ("*", or one
// that begins with ":") removes the group keys it matches and leaves the
// library's own keys (a tag's stamp) where they are: a stamp removed would
// let the values its tag invalidated be served again.
func TestPatternSparesOwnKeys(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	s := newStore(t, rdb, remote.Options{})
	ctx := context.Background()
	if err := s.Set(ctx, "g:1", value("v", time.Minute), time.Minute); err != nil {
		t.Fatal(err)
	}
	stamp := s.TagKey("t:user:7")
	if err := rdb.Set(ctx, "cl:"+stamp, "123", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"*", ":*", ":tag:*"} {
		if _, err := s.DeletePattern(ctx, p); err != nil {
			t.Fatalf("DeletePattern(%q): %v", p, err)
		}
		if n := rdb.Exists(ctx, "cl:"+stamp).Val(); n != 1 {
			t.Fatalf("after DeletePattern(%q) the stamp is gone", p)
		}
	}
	if n := rdb.Exists(ctx, "cl:g:1").Val(); n != 0 {
		t.Fatal(`DeletePattern("*") left the group key g:1`)
	}
}
