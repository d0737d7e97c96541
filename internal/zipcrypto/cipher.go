package zipcrypto

import (
	"hash/crc32"
	"io"
)

// Traditional PKWARE encryption (APPNOTE.TXT section 6.1) is a byte-wise
// stream cipher whose state is three 32-bit keys. The keys start at fixed
// values, absorb the password, then absorb every plaintext byte; each
// ciphertext byte is the plaintext byte XOR a key-stream byte derived from
// the third key. It is weak by modern standards: here it only keeps a
// malicious file from being opened by accident.

// Initial key values from APPNOTE.TXT section 6.1.5.
const (
	initKey0 = 0x12345678
	initKey1 = 0x23456789
	initKey2 = 0x34567890
)

// keyMultiplier is the constant of the linear congruential step that
// updates the second key.
const keyMultiplier = 134775813

// encryptionHeaderLen is the length of the encryption header that precedes
// the compressed data of every encrypted entry; it counts towards the
// entry's compressed size (APPNOTE.TXT 4.4.8 and 6.1.3).
const encryptionHeaderLen = 12

// cipherState holds the three keys of the traditional PKWARE cipher.
type cipherState struct {
	k0, k1, k2 uint32
}

// newCipherState returns the keys initialised with password, whose bytes
// are used as they are (a Go string is normally UTF-8).
func newCipherState(password string) cipherState {
	s := cipherState{k0: initKey0, k1: initKey1, k2: initKey2}
	for i := 0; i < len(password); i++ {
		s.update(password[i])
	}
	return s
}

// crcStep advances a raw CRC-32 register by one byte, without the
// pre- and post-inversion that crc32.Update applies.
func crcStep(reg uint32, b byte) uint32 {
	return crc32.IEEETable[byte(reg)^b] ^ reg>>8
}

// update mixes one plaintext byte into the keys.
func (s *cipherState) update(b byte) {
	s.k0 = crcStep(s.k0, b)
	s.k1 = (s.k1+s.k0&0xff)*keyMultiplier + 1
	s.k2 = crcStep(s.k2, byte(s.k1>>24))
}

// stream returns the next key-stream byte.
func (s *cipherState) stream() byte {
	t := uint16(s.k2) | 2
	return byte(uint32(t) * uint32(t^1) >> 8)
}

// encryptByte returns the ciphertext of plain and advances the keys.
func (s *cipherState) encryptByte(plain byte) byte {
	c := plain ^ s.stream()
	s.update(plain)
	return c
}

// encrypter encrypts what is written to it into dst through a fixed-size
// buffer, so its memory does not grow with the amount written. It counts
// the ciphertext bytes it has passed on.
type encrypter struct {
	dst   io.Writer
	state cipherState
	buf   []byte
	count uint64
}

// Write encrypts p and writes the ciphertext to the destination. It does
// not modify p.
func (e *encrypter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := min(len(p), len(e.buf))
		for i, b := range p[:chunk] {
			e.buf[i] = e.state.encryptByte(b)
		}
		n, err := e.dst.Write(e.buf[:chunk])
		e.count += uint64(n)
		written += n
		if err != nil {
			return written, err
		}
		if n < chunk {
			return written, io.ErrShortWrite
		}
		p = p[chunk:]
	}
	return written, nil
}
