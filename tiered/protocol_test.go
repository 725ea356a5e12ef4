package tiered_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/remote"
	"github.com/tiercache/tiercache/tiered"
)

// TestKeyNamingVectors checks the key naming of docs/protocol.md against
// testdata/protocol/keys.json: group keys, Redis keys, bus channels, the
// escaping of values put into patterns, and templates.
func TestKeyNamingVectors(t *testing.T) {
	b, err := os.ReadFile("../testdata/protocol/keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Keys []struct {
			Namespace, Group, ID, Key string
			RedisKey                  string `json:"redis_key"`
		}
		Channels  []struct{ Namespace, Channel string }
		Escapes   []struct{ Value, Escaped string }
		Templates []struct {
			Template string
			Pattern  bool
			Values   map[string]string
			Result   string
		}
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Keys) == 0 || len(v.Channels) == 0 || len(v.Escapes) == 0 || len(v.Templates) == 0 {
		t.Fatal("keys.json: a section is empty")
	}
	c, err := tiered.New(tiered.Options{}) // L1 only: Key needs no Redis
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rdb := redis.NewClient(&redis.Options{Addr: "invalid.invalid:1"}) // never used: RedisKey does no I/O
	defer rdb.Close()
	groups := map[string]*tiered.Group[string]{}
	for _, k := range v.Keys {
		g := groups[k.Group]
		if g == nil {
			if g, err = tiered.NewGroup[string](c, k.Group, tiered.GroupOptions{}); err != nil {
				t.Fatal(err)
			}
			groups[k.Group] = g
		}
		if got := g.Key(k.ID); got != k.Key {
			t.Errorf("group %q Key(%q) = %q; want %q", k.Group, k.ID, got, k.Key)
		}
		st, err := remote.New(rdb, remote.Options{Namespace: k.Namespace})
		if err != nil {
			t.Fatal(err)
		}
		if got := st.RedisKey(k.Key); got != k.RedisKey {
			t.Errorf("namespace %q RedisKey(%q) = %q; want %q", k.Namespace, k.Key, got, k.RedisKey)
		}
	}
	for _, ch := range v.Channels {
		if got := tiered.BusChannel(ch.Namespace); got != ch.Channel {
			t.Errorf("BusChannel(%q) = %q; want %q", ch.Namespace, got, ch.Channel)
		}
	}
	for _, e := range v.Escapes {
		if got := tiered.Escape(e.Value); got != e.Escaped {
			t.Errorf("Escape(%q) = %q; want %q", e.Value, got, e.Escaped)
		}
	}
	for _, tm := range v.Templates {
		parse := tiered.ParseKey
		if tm.Pattern {
			parse = tiered.ParsePattern
		}
		tp, err := parse(tm.Template)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := tp.ExpandMap(tm.Values); err != nil || got != tm.Result {
			t.Errorf("%q.ExpandMap(%v) = %q, %v; want %q", tm.Template, tm.Values, got, err, tm.Result)
		}
	}
}
