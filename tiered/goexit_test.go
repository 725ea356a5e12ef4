package tiered_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tiered"
)

// TestGoexitReleasesLeases: a batch loader that calls runtime.Goexit (as
// t.FailNow does) ends its batch with its leases given up, on the plain
// path and on the soft timeout's goroutine alike: by the time FetchMany
// returns, no lease of the batch is left for other nodes to wait on, nor
// renewed.
func TestGoexitReleasesLeases(t *testing.T) {
	rdb := newReal(t)
	for _, soft := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "soft"}[soft]
		t.Run(name, func(t *testing.T) {
			r := newFSRigWith(t, rdb, 1, tiered.GroupOptions{LoadSoftTimeout: time.Hour}, nil)
			ids := []string{"gx-" + name}
			if soft {
				r.cached("gx-old")
				ids = append(ids, "gx-old") // an expired id: the loader runs on its own goroutine
			}
			exit := func(context.Context, []string) (map[string]string, error) {
				runtime.Goexit()
				return nil, nil
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				defer func() { _ = recover() }() // what the caller gets is not the point here
				_, _ = r.groups[0].FetchMany(context.Background(), ids, exit)
			}()
			<-done
			key := "fs:" + r.groups[0].Key(ids[0])
			if n, err := rdb.Exists(context.Background(), key).Result(); err != nil || n != 0 {
				t.Fatalf("%s after the batch ended: EXISTS = %d, %v; want its lease given up", key, n, err)
			}
		})
	}
}
