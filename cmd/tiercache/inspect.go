package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tiercache/tiercache/remote"
)

var cmdInspect = &command{
	name:    "inspect",
	args:    "KEY",
	summary: "decode what Redis holds for a key",
	help: `
Reads KEY (as Group.Key returns it, e.g. user:42) from Redis through the
library's own decoder and shows the envelope: its kind (value, absent for a
cached "not found", lease while a node loads it, foreign for an envelope
version this release does not read, corrupt for bytes that are not an
envelope), its version, the write token, the TTL Redis has left (PTTL), the
logical expiry, how long the load took, the payload's size, and the payload
itself when it is JSON (the default codec). A key Redis does not hold shows
as kind miss. It changes nothing.`,
	flags: func(fs *flagSet, e *env) {
		fs.BoolVar(&e.jsonOut, "json", false, "print one JSON object, on one line")
	},
	run: func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 || args[0] == "" {
			return usagef("want exactly one KEY (see tiercache inspect --help)")
		}
		rdb, err := e.conn.client(e.getenv)
		if err != nil {
			return err
		}
		defer rdb.Close()
		st, err := remote.New(rdb, remote.Options{Namespace: e.conn.namespace, Timeout: e.conn.timeout, DisableBreaker: true})
		if err != nil {
			return usageError{err.Error()}
		}
		rec, err := st.Get(ctx, args[0])
		if err != nil {
			return fmt.Errorf("redis %s: %w", describe(rdb), err)
		}
		var pttl time.Duration
		if rec.Kind != remote.KindMiss {
			tctx, cancel := context.WithTimeout(ctx, e.conn.timeout)
			pttl, err = rdb.PTTL(tctx, st.RedisKey(args[0])).Result()
			cancel()
			if err != nil {
				return fmt.Errorf("redis %s: pttl: %w", describe(rdb), err)
			}
		}
		in := describeRecord(args[0], st.RedisKey(args[0]), rec, pttl, time.Now())
		if e.jsonOut {
			return json.NewEncoder(e.stdout).Encode(in) // one line, the payload as stored
		}
		in.print(e)
		return nil
	},
}

// inspection is what inspect shows of one key; its JSON form is the output
// of --json.
type inspection struct {
	Key          string          `json:"key"`
	RedisKey     string          `json:"redis_key"`
	Kind         string          `json:"kind"`
	Version      int             `json:"version,omitempty"`
	Token        string          `json:"token,omitempty"`
	TTLMillis    int64           `json:"ttl_ms,omitempty"` // -1: no TTL
	ExpiresAt    string          `json:"expires_at,omitempty"`
	LoadMicros   int64           `json:"load_us,omitempty"`
	BeganAt      string          `json:"load_began_at,omitempty"` // Redis TIME when the load began (envelope version 2)
	Tags         []string        `json:"tags,omitempty"`
	Bytes        int             `json:"bytes"`
	PayloadBytes int             `json:"payload_bytes"`
	Payload      json.RawMessage `json:"payload,omitempty"`
	PayloadHex   string          `json:"payload_hex,omitempty"`
}

// describeRecord turns what Redis holds into an inspection. now is the
// time the logical expiry is compared with.
func describeRecord(key, rkey string, rec remote.Record, pttl time.Duration, now time.Time) inspection {
	in := inspection{Key: key, RedisKey: rkey, Kind: rec.Kind.String(), Bytes: len(rec.Raw)}
	if rec.Kind == remote.KindMiss {
		return in
	}
	in.TTLMillis = pttl.Milliseconds()
	if pttl < 0 {
		in.TTLMillis = -1
	}
	if len(rec.Raw) >= 2 && rec.Kind != remote.KindCorrupt {
		in.Version = int(rec.Raw[1])
	}
	switch rec.Kind {
	case remote.KindValue, remote.KindAbsent, remote.KindLease, remote.KindStale:
	default: // foreign or corrupt: nothing more this release can read
		in.PayloadHex = hex.EncodeToString(rec.Raw[:min(len(rec.Raw), 64)])
		return in
	}
	in.Token = fmt.Sprintf("%016x", rec.Token)
	in.ExpiresAt = time.UnixMilli(rec.Expire).UTC().Format(time.RFC3339Nano)
	in.LoadMicros = rec.LoadTime.Microseconds()
	if rec.Begin != 0 {
		in.BeganAt = time.UnixMicro(rec.Begin).UTC().Format(time.RFC3339Nano)
	}
	in.Tags = rec.Tags
	in.PayloadBytes = len(rec.Payload)
	if len(rec.Payload) > 0 {
		if json.Valid(rec.Payload) {
			in.Payload = json.RawMessage(rec.Payload)
		} else {
			in.PayloadHex = hex.EncodeToString(rec.Payload[:min(len(rec.Payload), 64)])
		}
	}
	return in
}

func (in inspection) print(e *env) {
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "key\t%s\n", in.Key)
	fmt.Fprintf(w, "redis key\t%s\n", in.RedisKey)
	fmt.Fprintf(w, "kind\t%s\n", in.Kind)
	if in.Kind == remote.KindMiss.String() {
		return
	}
	if in.Version != 0 {
		fmt.Fprintf(w, "envelope\tversion %d, %d bytes\n", in.Version, in.Bytes)
	} else {
		fmt.Fprintf(w, "stored\t%d bytes\n", in.Bytes)
	}
	ttl := "none (persists)"
	if in.TTLMillis >= 0 {
		ttl = (time.Duration(in.TTLMillis) * time.Millisecond).String()
	}
	fmt.Fprintf(w, "ttl left\t%s\n", ttl)
	if in.Token != "" {
		fmt.Fprintf(w, "token\t%s\n", in.Token)
		fmt.Fprintf(w, "expires\t%s (logical expiry)\n", in.ExpiresAt)
		fmt.Fprintf(w, "load took\t%s\n", time.Duration(in.LoadMicros)*time.Microsecond)
		if in.BeganAt != "" {
			fmt.Fprintf(w, "load began\t%s (Redis TIME)\n", in.BeganAt)
		}
		if len(in.Tags) > 0 {
			fmt.Fprintf(w, "tags\t%s\n", strings.Join(in.Tags, " "))
		}
		fmt.Fprintf(w, "payload\t%d bytes\n", in.PayloadBytes)
	}
	if in.Payload != nil {
		fmt.Fprintf(w, "json\t%s\n", in.Payload)
	}
	if in.PayloadHex != "" {
		fmt.Fprintf(w, "hex\t%s\n", in.PayloadHex)
	}
}
