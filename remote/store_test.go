package remote_test

import (
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/remote"
)

func TestNewValidates(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	for _, tc := range []struct {
		ns, wantErr string
	}{
		{"", ""},
		{"shop", ""},
		{"a.b-c_d9", ""},
		{"has space", "not in"},
		{"glob*", "not in"},
		{"col:on", "not in"},
		{strings.Repeat("x", 65), "1 to 64"},
	} {
		_, err := remote.New(rdb, remote.Options{Namespace: tc.ns})
		if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("New(namespace %q) error = %v; want containing %q", tc.ns, err, tc.wantErr)
		}
	}
	if _, err := remote.New(nil, remote.Options{}); err == nil {
		t.Error("New(nil client) succeeded")
	}
}
