package redistest_test

import (
	"context"
	"testing"

	"github.com/tiercache/tiercache/internal/redistest"
)

func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	c := s.Client(t)
	ctx := context.Background()
	old := s.Primary(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through the failover client: %v", err)
	}
	p := s.Failover(t)
	if p == old {
		t.Fatalf("Failover kept %s as the primary", p.Addr())
	}
	if s.Replica(t) != old {
		t.Fatalf("Replica() after Failover is not the former primary")
	}
	s.WaitReplicaInSync(t)
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET after the failover = %q, %v; want \"v\"", v, err)
	}
	if err := c.Set(ctx, "k2", "v2", 0).Err(); err != nil {
		t.Fatalf("SET after the failover: %v", err)
	}
	if n, _ := p.Client(t).Exists(ctx, "k2").Result(); n != 1 {
		t.Fatal("the failover client did not write to the new primary")
	}
}
