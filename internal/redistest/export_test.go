package redistest

import "testing"

// Exported for the tests of package redistest_test.
var (
	Decide       = decide
	ErrPortInUse = errPortInUse
)

// Verdict is the result of Decide.
type Verdict = verdict

// Verdicts of Decide.
const (
	UseBinary = useBinary
	SkipTest  = skipTest
	FailTest  = failTest
)

// LaunchOn starts a second redis-server on the port of s, once, without
// retrying, and returns the error; a server that does come up is killed
// when the test ends.
func LaunchOn(t testing.TB, s *Server) error {
	o := &Server{t: t, bin: s.bin, dir: t.TempDir(), port: s.port}
	p, err := o.launch()
	if err == nil {
		t.Cleanup(p.kill)
	}
	return err
}
