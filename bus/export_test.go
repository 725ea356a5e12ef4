package bus

import "time"

// OldSequences makes o's bus compare sequence numbers as it did before
// spoofed numbers were handled.
func OldSequences(o *Options) { o.compat.seq = true }

// OldReceive makes o's bus read with a timeout, as it did before large
// messages were handled.
func OldReceive(o *Options) { o.compat.timeout = true }

// NoKick makes o's bus wait out its backoff even when the pool answers.
func NoKick(o *Options) { o.compat.noKick = true }

// Backoff makes every backoff step of o's bus last d.
func Backoff(o *Options, d time.Duration) { o.compat.backoff = d }

// NoGroup makes o's bus send each Publish call's items alone, as it did
// before group commits.
func NoGroup(o *Options) { o.compat.noGroup = true }

// Queued returns how many Publish calls wait for a sender.
func Queued(b *Bus) int {
	b.qMu.Lock()
	defer b.qMu.Unlock()
	return len(b.queue)
}

// PublishFirst makes PublishAfter put its PUBLISHes before the caller's
// commands in the pipeline.
func PublishFirst(o *Options) { o.compat.publishFirst = true }
