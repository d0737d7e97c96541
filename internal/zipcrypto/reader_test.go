package zipcrypto

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"testing"
)

// This file holds the test's own reader for encrypted entries: it decrypts
// with a cipher written apart from the package's (a bitwise CRC instead of
// the table), inflates and checks the CRC-32, and it is itself checked
// against an archive written by Info-ZIP zip.

var errWrongPassword = errors.New("wrong password: check byte mismatch")

// refKeys is the test's implementation of the APPNOTE 6.1 key schedule.
type refKeys [3]uint32

func refCRCByte(crc uint32, b byte) uint32 {
	crc ^= uint32(b)
	for range 8 {
		if crc&1 != 0 {
			crc = crc>>1 ^ 0xEDB88320
		} else {
			crc >>= 1
		}
	}
	return crc
}

func newRefKeys(password string) *refKeys {
	k := &refKeys{305419896, 591751049, 878082192}
	for _, b := range []byte(password) {
		k.absorb(b)
	}
	return k
}

func (k *refKeys) absorb(b byte) {
	k[0] = refCRCByte(k[0], b)
	k[1] = (k[1]+(k[0]&0xff))*134775813 + 1
	k[2] = refCRCByte(k[2], byte(k[1]>>24))
}

func (k *refKeys) decrypt(c byte) byte {
	t := (k[2] | 2) & 0xffff
	p := c ^ byte((t*(t^1))>>8)
	k.absorb(p)
	return p
}

// decrypted is what the test reader found in one entry.
type decrypted struct {
	header [12]byte // the decrypted encryption header
	data   []byte
}

// openEncrypted decrypts, inflates and verifies one entry of an archive.
func openEncrypted(f *zip.File, password string) (decrypted, error) {
	var out decrypted
	if f.Flags&0x1 == 0 {
		return out, fmt.Errorf("%s: not encrypted (flags %#x)", f.Name, f.Flags)
	}
	if f.Method != zip.Deflate {
		return out, fmt.Errorf("%s: method %d, want Deflate", f.Name, f.Method)
	}
	r, err := f.OpenRaw()
	if err != nil {
		return out, fmt.Errorf("%s: %w", f.Name, err)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		return out, fmt.Errorf("%s: %w", f.Name, err)
	}
	if uint64(len(raw)) != f.CompressedSize64 {
		return out, fmt.Errorf("%s: %d raw bytes, compressed size says %d", f.Name, len(raw), f.CompressedSize64)
	}
	if len(raw) < 12 {
		return out, fmt.Errorf("%s: %d bytes, shorter than the encryption header", f.Name, len(raw))
	}
	k := newRefKeys(password)
	for i := range out.header {
		out.header[i] = k.decrypt(raw[i])
	}
	want := byte(f.CRC32 >> 24)
	if f.Flags&0x8 != 0 {
		want = byte(f.ModifiedTime >> 8)
	}
	if out.header[11] != want {
		return out, fmt.Errorf("%s: %w (%#x, want %#x)", f.Name, errWrongPassword, out.header[11], want)
	}
	comp := make([]byte, len(raw)-12)
	for i, c := range raw[12:] {
		comp[i] = k.decrypt(c)
	}
	data, err := io.ReadAll(flate.NewReader(bytes.NewReader(comp)))
	if err != nil {
		return out, fmt.Errorf("%s: inflate: %w", f.Name, err)
	}
	if uint64(len(data)) != f.UncompressedSize64 {
		return out, fmt.Errorf("%s: %d bytes, uncompressed size says %d", f.Name, len(data), f.UncompressedSize64)
	}
	if got := crc32.ChecksumIEEE(data); got != f.CRC32 {
		return out, fmt.Errorf("%s: CRC-32 %#x, header says %#x", f.Name, got, f.CRC32)
	}
	out.data = data
	return out, nil
}

// checkLocalLayout reads the local header and the data descriptor of f
// straight from the archive bytes: the flags must announce encryption and
// a data descriptor, the local CRC and sizes must be zero when zeroLocal
// is set (Info-ZIP fills them in afterwards when it can seek), and the
// descriptor must repeat the central directory's CRC and sizes.
func checkLocalLayout(t *testing.T, archive []byte, f *zip.File, zeroLocal bool) {
	t.Helper()
	dataStart, err := f.DataOffset()
	if err != nil {
		t.Fatalf("%s: data offset: %v", f.Name, err)
	}
	headerStart := dataStart - int64(30+len(f.Name)+len(f.Extra))
	// f.Extra is the central directory's extra field; this package writes
	// the same extra field in both headers, which the length check proves.
	local := archive[headerStart:]
	le := binary.LittleEndian
	if sig := le.Uint32(local); sig != 0x04034b50 {
		t.Fatalf("%s: local header signature %#x", f.Name, sig)
	}
	if flags := le.Uint16(local[6:]); flags&0x9 != 0x9 {
		t.Errorf("%s: local flags %#x lack encrypted|data descriptor", f.Name, flags)
	}
	if crc, c, u := le.Uint32(local[14:]), le.Uint32(local[18:]), le.Uint32(local[22:]); zeroLocal && crc|c|u != 0 {
		t.Errorf("%s: local CRC/sizes %#x/%d/%d, want zero before a data descriptor", f.Name, crc, c, u)
	}
	if n, x := int(le.Uint16(local[26:])), int(le.Uint16(local[28:])); n != len(f.Name) || x != len(f.Extra) {
		t.Fatalf("%s: local name/extra lengths %d/%d, central %d/%d", f.Name, n, x, len(f.Name), len(f.Extra))
	}
	desc := archive[dataStart+int64(f.CompressedSize64):]
	if sig := le.Uint32(desc); sig != 0x08074b50 {
		t.Fatalf("%s: data descriptor signature %#x", f.Name, sig)
	}
	if crc, c, u := le.Uint32(desc[4:]), le.Uint32(desc[8:]), le.Uint32(desc[12:]); crc != f.CRC32 || uint64(c) != f.CompressedSize64 || uint64(u) != f.UncompressedSize64 {
		t.Errorf("%s: descriptor CRC/sizes %#x/%d/%d, central %#x/%d/%d", f.Name, crc, c, u, f.CRC32, f.CompressedSize64, f.UncompressedSize64)
	}
}

// TestReaderOpensInfoZIPArchive proves the test reader against an archive
// written by a standard tool (see testdata/README.md).
func TestReaderOpensInfoZIPArchive(t *testing.T) {
	t.Parallel()
	archive, err := os.ReadFile("testdata/infozip.zip")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{
		"hello.txt":     bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog.\n"), 20),
		"all-bytes.bin": bytes.Repeat(allBytes(), 16),
	}
	if len(zr.File) != len(want) {
		t.Fatalf("%d entries, want %d", len(zr.File), len(want))
	}
	for _, f := range zr.File {
		got, err := openEncrypted(f, "infected")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.data, want[f.Name]) {
			t.Errorf("%s: content differs from what Info-ZIP stored", f.Name)
		}
		checkLocalLayout(t, archive, f, false)
		if _, err := openEncrypted(f, "infecte"); !errors.Is(err, errWrongPassword) {
			t.Errorf("%s with a wrong password: %v, want %v", f.Name, err, errWrongPassword)
		}
	}
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}
