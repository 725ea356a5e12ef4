package tiered_test

import (
	"fmt"

	"github.com/tiercache/tiercache/tiered"
)

// A process outside the fleet publishes its invalidations on the
// namespace's bus channel (see docs/protocol.md).
func ExampleBusChannel() {
	fmt.Println(tiered.BusChannel("shop"))
	fmt.Println(tiered.BusChannel(tiered.DefaultNamespace))
	// Output:
	// shop:tiercache:bus
	// tiercache:tiercache:bus
}

// Scripts announce the leases other nodes wait for on the namespace's
// wake channel; a Redis ACL must let the cache's user use it as it does
// the bus channel ("&shop:tiercache:*" covers both; see docs/protocol.md).
func ExampleWakeChannel() {
	fmt.Println(tiered.WakeChannel("shop"))
	// Output:
	// shop:tiercache:wake
}
