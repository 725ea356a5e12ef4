package redistest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
)

const (
	// lowestPort is the lowest port picked when the kernel's ephemeral
	// ports are all above the limit asked for.
	lowestPort = 10000
	// machinePort is the port of the Redis a machine may run itself: never
	// picked, even if it looks free.
	machinePort = 6379
)

// freePort returns a loopback port, no higher than maxPort unless maxPort is
// 0, that was free a moment ago: another process may take it before the
// caller binds it, so callers retry with another port when binding fails.
func freePort(maxPort int) (int, error) {
	for range 20 {
		port, err := listenPort(0)
		if err != nil {
			return 0, err
		}
		if maxPort == 0 || port <= maxPort {
			return port, nil
		}
	}
	// The kernel's ephemeral range lies above maxPort: try ports below it.
	if maxPort < lowestPort {
		return 0, fmt.Errorf("no free port: MaxPort %d is below %d", maxPort, lowestPort)
	}
	for range 100 {
		p := lowestPort + rand.IntN(maxPort-lowestPort+1)
		if p == machinePort {
			continue
		}
		if port, err := listenPort(p); err == nil {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port in [%d, %d]", lowestPort, maxPort)
}

// listenPort listens on 127.0.0.1:port (0: any), closes the listener and
// returns the port it had.
func listenPort(port int) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

const (
	// busOffset is how far above its port a cluster node listens for its
	// cluster bus.
	busOffset = 10000
	// highestClusterPort keeps a cluster node and its bus below 32768,
	// where the kernel's ephemeral ports usually begin, so that no
	// outgoing connection holds a bus port.
	highestClusterPort = 32767 - busOffset
)

// freeClusterPort returns a loopback port P in [10000, 22767], other than
// 6379, such that P and P+10000 were both free a moment ago.
func freeClusterPort() (int, error) {
	for range 200 {
		p := lowestPort + rand.IntN(highestClusterPort-lowestPort+1)
		if p == machinePort || p+busOffset == machinePort {
			continue
		}
		if _, err := listenPort(p); err != nil {
			continue
		}
		if _, err := listenPort(p + busOffset); err == nil {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port P in [%d, %d] with P+%d free", lowestPort, highestClusterPort, busOffset)
}
