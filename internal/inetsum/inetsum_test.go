package inetsum

import "testing"

func TestChecksum(t *testing.T) {
	for _, c := range []struct {
		name string
		sum  uint32
		b    []byte
		want uint16
	}{
		// RFC 1071 §3's example: the sum of 0001 f203 f4f5 f6f7 is ddf2.
		{"RFC 1071 example", 0, []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, ^uint16(0xddf2)},
		{"odd length", 0, []byte{0xff}, ^uint16(0xff00)},
		{"a starting sum", 0x0102, []byte{0x00, 0x01}, ^uint16(0x0103)},
		// The carries fold back in: ffff + 0001 = 1 0000 → 0001.
		{"carry", 0xffff, []byte{0x00, 0x01}, ^uint16(0x0001)},
		// A header with its own checksum in it sums to 0.
		{"verifies", 0, []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7, 0x22, 0x0d}, 0},
	} {
		if got := Checksum(c.sum, c.b); got != c.want {
			t.Errorf("%s: %#04x, want %#04x", c.name, got, c.want)
		}
	}
}
