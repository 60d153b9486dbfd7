package eventstore

import "github.com/usersd/usersd/internal/pii"

// NewPlainCodecForBenchmark returns a codec that writes every value in
// clear, as usersd did before sealing, and reads like NewCodec's: the
// baseline the sealing benchmarks compare with. It exists only in this
// package's test builds.
func NewPlainCodecForBenchmark(keys pii.Keyring, streamKey []byte) *Codec {
	c := NewCodec(keys, streamKey)
	c.plain = true
	return c
}
