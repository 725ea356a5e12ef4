package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/remote"
)

// urlEnv names the environment variable that gives the Redis URL when no
// address flag does.
const urlEnv = "TIERCACHE_REDIS_URL"

// authEnv is redis-cli's: the password when neither -a nor the URL gives one.
const authEnv = "REDISCLI_AUTH"

// connFlags are the connection flags every command but help takes.
type connFlags struct {
	host, user, password string
	port, db             int
	url                  string
	tls, insecure        bool
	cacert               string
	cluster, sentinel    string
	master               string
	namespace            string
	timeout              time.Duration
	sharded              bool
	busKey               string

	set map[string]bool // the flags given on the command line
}

func (c *connFlags) register(fs *flagSet) {
	fs.StringVar(&c.host, "h", "127.0.0.1", "Redis `host`")
	fs.IntVar(&c.port, "p", 6379, "Redis `port`")
	fs.StringVar(&c.password, "a", "", "`password` (default: the URL's, else $"+authEnv+")")
	fs.StringVar(&c.user, "user", "", "ACL user `name`")
	fs.IntVar(&c.db, "n", 0, "database `number`")
	fs.StringVar(&c.url, "url", "", "Redis `URL`, redis://[user:password@]host:port[/db] or rediss://... (default $"+urlEnv+")")
	fs.BoolVar(&c.tls, "tls", false, "connect with TLS")
	fs.BoolVar(&c.insecure, "insecure", false, "with --tls, do not verify the server's certificate")
	fs.StringVar(&c.cacert, "cacert", "", "with --tls, trust the CA certificates in `file`")
	fs.StringVar(&c.cluster, "cluster", "", "Redis Cluster seed `addrs`, comma-separated host:port")
	fs.StringVar(&c.sentinel, "sentinel", "", "Sentinel `addrs`, comma-separated host:port (with --master)")
	fs.StringVar(&c.master, "master", "", "the `name` of the master that the sentinels watch")
	fs.StringVar(&c.namespace, "namespace", remote.DefaultNamespace, "the fleet's `namespace` (tiered.Options.Namespace)")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Second, "bound on each Redis call and on connecting")
	fs.BoolVar(&c.sharded, "sharded", false, "the fleet uses sharded pub/sub (tiered.Options.ShardedPubSub)")
	fs.StringVar(&c.busKey, "bus-key", "", "sign bus messages with this HMAC `key`, the fleet's tiered.Options.BusKey[0] (default $"+busKeyEnv+")")
}

// busKeyEnv names the variable that holds the bus key when --bus-key is
// not given: a key on the command line shows in the process list.
const busKeyEnv = "TIERCACHE_BUS_KEY"

// client returns a client for the connection flags. It does no I/O.
func (c *connFlags) client(getenv func(string) string) (redis.UniversalClient, error) {
	if err := remote.ValidateNamespace(c.namespace); err != nil {
		return nil, usageError{err.Error()}
	}
	if c.timeout <= 0 {
		return nil, usagef("--timeout must be positive, not %v", c.timeout)
	}
	addrFlag := c.set["h"] || c.set["p"]
	modes := 0
	for _, on := range []bool{addrFlag, c.url != "", c.cluster != "", c.sentinel != ""} {
		if on {
			modes++
		}
	}
	if modes > 1 {
		return nil, usagef("give one of -h/-p, --url, --cluster and --sentinel")
	}
	if (c.master != "") != (c.sentinel != "") {
		return nil, usagef("--sentinel and --master go together")
	}
	tlsConf, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	switch {
	case c.cluster != "":
		if c.db != 0 {
			return nil, usagef("a Redis Cluster has database 0 only: drop -n")
		}
		addrs, err := splitAddrs("--cluster", c.cluster)
		if err != nil {
			return nil, err
		}
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: addrs, Username: c.user, Password: c.passwordOr("", getenv), TLSConfig: tlsConf,
			DialTimeout: c.timeout, ReadTimeout: c.timeout, WriteTimeout: c.timeout,
			ContextTimeoutEnabled: true, MaxRetries: -1,
		}), nil
	case c.sentinel != "":
		addrs, err := splitAddrs("--sentinel", c.sentinel)
		if err != nil {
			return nil, err
		}
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: c.master, SentinelAddrs: addrs, Username: c.user, Password: c.passwordOr("", getenv),
			DB: c.db, TLSConfig: tlsConf, DialTimeout: c.timeout, ReadTimeout: c.timeout, WriteTimeout: c.timeout,
			ContextTimeoutEnabled: true, MaxRetries: -1,
		}), nil
	}
	url := c.url
	if url == "" && !addrFlag {
		url = getenv(urlEnv)
	}
	opts := &redis.Options{Addr: net.JoinHostPort(c.host, strconv.Itoa(c.port))}
	if url != "" {
		if opts, err = redis.ParseURL(url); err != nil {
			return nil, usageError{err.Error()}
		}
	}
	if c.set["user"] {
		opts.Username = c.user
	}
	opts.Password = c.passwordOr(opts.Password, getenv)
	if c.set["n"] {
		opts.DB = c.db
	}
	if tlsConf != nil {
		tlsConf.ServerName, _, _ = net.SplitHostPort(opts.Addr)
		opts.TLSConfig = tlsConf
	}
	// Every bound is --timeout: without a read and write timeout, a server
	// that accepts and never answers holds a call for go-redis's defaults.
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = c.timeout, c.timeout, c.timeout
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = -1 // one attempt: a command fails fast and says why
	return redis.NewClient(opts), nil
}

// passwordOr returns the password to use when the address gave fromURL
// ("" for none): -a when given (even empty), else fromURL, else
// $REDISCLI_AUTH. redis-cli reads the variable only when neither -a nor
// -u carries a password, and docs/cli.md promises its behaviour.
func (c *connFlags) passwordOr(fromURL string, getenv func(string) string) string {
	switch {
	case c.set["a"]:
		return c.password
	case fromURL != "":
		return fromURL
	}
	return getenv(authEnv)
}

// tlsConfig returns the TLS configuration of the flags, nil without --tls.
func (c *connFlags) tlsConfig() (*tls.Config, error) {
	if !c.tls {
		if c.insecure || c.cacert != "" {
			return nil, usagef("--insecure and --cacert need --tls")
		}
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.insecure}
	if c.cacert != "" {
		pem, err := os.ReadFile(c.cacert)
		if err != nil {
			return nil, usagef("--cacert: %v", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usagef("--cacert %s: no PEM certificate", c.cacert)
		}
	}
	return conf, nil
}

// splitAddrs splits a comma-separated list of host:port.
func splitAddrs(flagName, s string) ([]string, error) {
	var addrs []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, usagef("%s: %q is not host:port", flagName, a)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, usagef("%s: no address", flagName)
	}
	return addrs, nil
}

// describe names where c connects, for messages.
func describe(c redis.UniversalClient) string {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().Addr
	case *redis.ClusterClient:
		return "cluster " + strings.Join(c.Options().Addrs, ",")
	}
	return fmt.Sprintf("%T", c)
}
