package sigclient

import "encoding/binary"

// NumberedPayload returns the bytes of packet n of a test or load stream:
// n as a big-endian uint32, then a pattern derived from n, so a receiver can
// tell a lost, reordered or altered packet from the bytes alone.
func NumberedPayload(n uint32, size int) []byte {
	b := make([]byte, max(size, 4))
	binary.BigEndian.PutUint32(b, n)
	for i := 4; i < len(b); i++ {
		b[i] = byte(n) ^ byte(i)
	}
	return b
}

// PayloadNumber reads the counter NumberedPayload put in b.
func PayloadNumber(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}
