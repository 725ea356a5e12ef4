package redistest_test

import (
	"testing"

	"github.com/tiercache/tiercache/internal/redistest"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		found bool
		env   string
		want  redistest.Verdict
	}{
		{found: true, env: "", want: redistest.UseBinary},
		{found: true, env: "1", want: redistest.UseBinary},
		{found: false, env: "", want: redistest.SkipTest},
		{found: false, env: "0", want: redistest.SkipTest},
		{found: false, env: "true", want: redistest.SkipTest},
		{found: false, env: " 1", want: redistest.SkipTest},
		{found: false, env: "1", want: redistest.FailTest},
	} {
		if got := redistest.Decide(tc.found, tc.env); got != tc.want {
			t.Errorf("decide(%v, %q) = %v; want %v", tc.found, tc.env, got, tc.want)
		}
	}
}

func TestRequireRedis(t *testing.T) {
	for env, want := range map[string]bool{"": false, "0": false, "1": true, "yes": false} {
		t.Setenv(redistest.RequireEnv, env)
		if got := redistest.RequireRedis(); got != want {
			t.Errorf("RequireRedis() with %s=%q = %v; want %v", redistest.RequireEnv, env, got, want)
		}
	}
}
