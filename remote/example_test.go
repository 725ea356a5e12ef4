package remote_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/remote"
)

// LoadScripts puts the store's scripts in every server's script cache at
// start-up; without it, the first call that meets NOSCRIPT loads them.
func ExampleStore_LoadScripts() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	s, err := remote.New(rdb, remote.Options{Namespace: "shop"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("loaded:", s.LoadScripts(context.Background()) == nil)
	// Output:
	// loaded: true
}
