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
