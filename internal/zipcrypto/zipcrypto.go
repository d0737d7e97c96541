// Package zipcrypto writes ZIP archives whose entries are compressed with
// Deflate and encrypted with traditional PKWARE encryption ("ZipCrypto",
// PKWARE APPNOTE.TXT section 6.1), the scheme Windows Explorer, 7-Zip and
// Info-ZIP unzip open with a password prompt.
//
// It exists for the malware-sharing convention: files taken from a phishing
// email are handed on inside an archive protected with the password
// "infected", so that nobody opens one by a double click. ZipCrypto is
// weak cryptography and is used here for that purpose only, never to keep
// a secret.
//
// Entries are streamed: every entry is written with a data descriptor
// (general purpose flag bit 3), so its CRC-32 and sizes follow the data
// and nothing is held in memory beyond fixed-size compression and
// encryption buffers. An entry holds at most MaxEntrySize bytes; an
// archive whose entries together pass 4 GiB gets the ZIP64 end records
// archive/zip writes.
package zipcrypto

import (
	"archive/zip"
	"compress/flate"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// General purpose flag bits (APPNOTE.TXT 4.4.4).
const (
	flagEncrypted      = 0x0001
	flagDataDescriptor = 0x0008
	flagUTF8           = 0x0800
)

// zipVersion20 is the "version needed to extract" of a Deflate entry with
// traditional encryption, and the "version made by" this package claims
// (APPNOTE.TXT 4.4.3.2).
const zipVersion20 = 20

// extTimeExtraID is the header ID of the extended timestamp extra field
// (APPNOTE.TXT 4.6.1, "UT", defined by Info-ZIP).
const extTimeExtraID = 0x5455

// MaxEntrySize is the most bytes one entry may hold. With Deflate's
// worst-case overhead and the encryption header the compressed size stays
// below 4 GiB, so no entry needs ZIP64 sizes, which would need a ZIP64
// extra field in the local header that archive/zip does not write for raw
// entries.
const MaxEntrySize = 4_000_000_000

// maxNameLen is the longest name a ZIP header can carry.
const maxNameLen = 1<<16 - 1

// encryptBufferLen is the size of the buffer that holds ciphertext on its
// way to the archive.
const encryptBufferLen = 32 << 10

// fileMode is the permission recorded for every entry: a plain file that
// its owner may read and write and others may read, never executable.
const fileMode = 0o644

var (
	// ErrInvalidName is returned by Writer.Create for an entry name that is
	// empty, absolute, not valid UTF-8, contains a ".." component or a NUL
	// byte, ends with a slash or is longer than a ZIP header allows.
	ErrInvalidName = errors.New("invalid entry name")
	// ErrTooLarge is returned by a write that would take an entry past
	// MaxEntrySize.
	ErrTooLarge = errors.New("zip entry too large")
	// ErrClosed is returned when a Writer is used after Close, or when an
	// entry writer is used after its entry has ended.
	ErrClosed = errors.New("already closed")
)

// Earliest and latest modification times an entry records. The MS-DOS
// date field starts in 1980 and the extended timestamp is an unsigned
// 32-bit count of seconds since 1970; times outside both are clamped. The
// margin of a day keeps the local-time MS-DOS fields in range whatever the
// time's location.
var (
	earliestModTime = time.Date(1980, time.January, 2, 0, 0, 0, 0, time.UTC)
	latestModTime   = time.Date(2106, time.January, 1, 0, 0, 0, 0, time.UTC)
)

// Writer writes an encrypted ZIP archive. Its methods and the writers
// returned by Create must be called from one goroutine at a time. After
// a write error of the underlying writer, or ErrTooLarge, every method
// returns an error wrapping that first failure; the archive is then
// incomplete.
type Writer struct {
	zw       *zip.Writer
	password string
	random   io.Reader
	maxEntry uint64
	comp     *flate.Writer
	encBuf   []byte
	cur      *entry
	err      error
	closed   bool
}

// NewWriter returns a Writer that writes a ZIP archive to w whose entries are
// compressed with Deflate and encrypted with password.
//
// The password's bytes are used as they are; keep it to ASCII (such as the
// conventional "infected") for every tool to accept it. The random bytes
// of each entry's encryption header come from crypto/rand.
func NewWriter(w io.Writer, password string) *Writer {
	return &Writer{
		zw:       zip.NewWriter(w),
		password: password,
		random:   rand.Reader,
		maxEntry: MaxEntrySize,
	}
}

// Create adds an entry; what is written to the returned writer is compressed
// and encrypted as it arrives (nothing is buffered whole). The entry ends
// at the next Create or Close.
//
// The name is a slash-separated relative path and is stored as given (with
// the UTF-8 flag set when it holds non-ASCII characters); the caller
// sanitizes it, and Create refuses with ErrInvalidName a name that is
// empty, absolute, not valid UTF-8, contains a ".." component or a NUL
// byte, or ends with a slash. Modified is recorded as the entry's
// modification time, clamped to the years 1980 to 2105; the MS-DOS fields
// use its location. Writing to the returned writer after its entry has
// ended fails with ErrClosed; writing more than MaxEntrySize bytes fails
// with ErrTooLarge and leaves the archive unusable.
func (w *Writer) Create(name string, modified time.Time) (io.Writer, error) {
	if w.closed {
		return nil, fmt.Errorf("create zip entry %q: %w", name, ErrClosed)
	}
	if w.err != nil {
		return nil, fmt.Errorf("create zip entry %q: %w", name, w.err)
	}
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("create zip entry %q: %w", name, err)
	}
	if err := w.finishEntry(); err != nil {
		return nil, err
	}

	// CreateRaw writes the header as it is given, so every field that
	// CreateHeader would fill in is set here.
	mod := clampModTime(modified)
	dosDate, dosTime := msDOSDateTime(mod)
	fh := &zip.FileHeader{
		Name:   name,
		Method: zip.Deflate,
		Flags:  flagEncrypted | flagDataDescriptor,
		Extra:  extendedTimestamp(mod),
	}
	if !isASCII(name) {
		fh.Flags |= flagUTF8
	}
	//lint:ignore SA1019 CreateRaw writes the MS-DOS fields as they are given.
	fh.ModifiedDate, fh.ModifiedTime = dosDate, dosTime
	fh.SetMode(fileMode)
	fh.CreatorVersion = fh.CreatorVersion&0xff00 | zipVersion20
	fh.ReaderVersion = zipVersion20
	raw, err := w.zw.CreateRaw(fh)
	if err != nil {
		w.err = err
		return nil, fmt.Errorf("create zip entry %q: %w", name, err)
	}

	if w.encBuf == nil {
		w.encBuf = make([]byte, encryptBufferLen)
	}
	e := &entry{
		w:   w,
		fh:  fh,
		crc: crc32.NewIEEE(),
		enc: &encrypter{
			dst:   raw,
			state: newCipherState(w.password),
			buf:   w.encBuf,
		},
	}
	// The encryption header is eleven random bytes and a check byte. With
	// a data descriptor the CRC is not known yet, so the check byte is the
	// high byte of the MS-DOS modification time in the local header, as
	// Info-ZIP does.
	var header [encryptionHeaderLen]byte
	if _, err := io.ReadFull(w.random, header[:encryptionHeaderLen-1]); err != nil {
		w.err = err
		return nil, fmt.Errorf("create zip entry %q: read random encryption header: %w", name, err)
	}
	header[encryptionHeaderLen-1] = byte(dosTime >> 8)
	if _, err := e.enc.Write(header[:]); err != nil {
		w.err = err
		return nil, fmt.Errorf("create zip entry %q: %w", name, err)
	}

	if w.comp == nil {
		comp, err := flate.NewWriter(e.enc, flate.DefaultCompression)
		if err != nil {
			w.err = err
			return nil, fmt.Errorf("create zip entry %q: %w", name, err)
		}
		w.comp = comp
	} else {
		w.comp.Reset(e.enc)
	}
	w.cur = e
	return e, nil
}

// Close finishes the last entry and writes the central directory. It does
// not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return fmt.Errorf("close zip archive: %w", ErrClosed)
	}
	w.closed = true
	if w.err != nil {
		return fmt.Errorf("close zip archive: %w", w.err)
	}
	if err := w.finishEntry(); err != nil {
		return err
	}
	if err := w.zw.Close(); err != nil {
		w.err = err
		return fmt.Errorf("close zip archive: write central directory: %w", err)
	}
	return nil
}

// finishEntry flushes the current entry, if any, and records its CRC-32
// and sizes in its header, where archive/zip reads them for the data
// descriptor and the central directory.
func (w *Writer) finishEntry() error {
	e := w.cur
	if e == nil {
		return nil
	}
	w.cur = nil
	e.done = true
	if err := w.comp.Close(); err != nil {
		w.err = err
		return fmt.Errorf("finish zip entry %q: %w", e.fh.Name, err)
	}
	if e.enc.count >= 1<<32-1 || e.size >= 1<<32-1 {
		// MaxEntrySize keeps both sizes below the ZIP64 threshold.
		w.err = fmt.Errorf("%d bytes compressed to %d: %w", e.size, e.enc.count, ErrTooLarge)
		return fmt.Errorf("finish zip entry %q: %w", e.fh.Name, w.err)
	}
	fh := e.fh
	fh.CRC32 = e.crc.Sum32()
	fh.CompressedSize64 = e.enc.count
	fh.UncompressedSize64 = e.size
	// For an entry added with CreateRaw, archive/zip writes the data
	// descriptor and the central directory from these 32-bit fields.
	//lint:ignore SA1019 archive/zip reads these fields for raw entries.
	fh.CompressedSize, fh.UncompressedSize = uint32(e.enc.count), uint32(e.size)
	return nil
}

// entry is the writer Create returns for one archive entry.
type entry struct {
	w    *Writer
	fh   *zip.FileHeader
	crc  hash.Hash32
	enc  *encrypter
	size uint64
	done bool
}

// Write compresses and encrypts p into the archive.
func (e *entry) Write(p []byte) (int, error) {
	if e.done {
		return 0, fmt.Errorf("write zip entry %q: %w", e.fh.Name, ErrClosed)
	}
	if e.w.err != nil {
		return 0, fmt.Errorf("write zip entry %q: %w", e.fh.Name, e.w.err)
	}
	if uint64(len(p)) > e.w.maxEntry-e.size {
		e.w.err = fmt.Errorf("more than %d bytes: %w", e.w.maxEntry, ErrTooLarge)
		return 0, fmt.Errorf("write zip entry %q: %w", e.fh.Name, e.w.err)
	}
	n, err := e.w.comp.Write(p)
	e.crc.Write(p[:n])
	e.size += uint64(n)
	if err != nil {
		e.w.err = err
		return n, fmt.Errorf("write zip entry %q: %w", e.fh.Name, err)
	}
	return n, nil
}

// checkName refuses entry names that could escape the extraction
// directory or that a ZIP header cannot carry. Backslashes count as
// separators because Windows tools treat them so.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > maxNameLen:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidName, len(name), maxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidName)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%w: contains a NUL byte", ErrInvalidName)
	case name[0] == '/' || name[0] == '\\':
		return fmt.Errorf("%w: absolute path", ErrInvalidName)
	case len(name) >= 2 && name[1] == ':' && isASCIILetter(name[0]):
		return fmt.Errorf("%w: absolute path with a drive letter", ErrInvalidName)
	case strings.HasSuffix(name, "/") || strings.HasSuffix(name, "\\"):
		return fmt.Errorf("%w: ends with a separator", ErrInvalidName)
	}
	for part := range strings.FieldsFuncSeq(name, isSeparator) {
		if part == ".." {
			return fmt.Errorf("%w: contains a %q component", ErrInvalidName, "..")
		}
	}
	return nil
}

func isSeparator(r rune) bool { return r == '/' || r == '\\' }

func isASCIILetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }

// msDOSDateTime returns t's MS-DOS date and time fields (APPNOTE.TXT
// 4.4.6) in t's location, at two-second resolution.
func msDOSDateTime(t time.Time) (date, clock uint16) {
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	clock = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	return date, clock
}

// extendedTimestamp returns an extended timestamp extra field holding t
// as the modification time, which readers prefer to the MS-DOS fields
// because it is exact to the second and in UTC. The same field serves the
// local header and the central directory.
func extendedTimestamp(t time.Time) []byte {
	b := make([]byte, 9)
	binary.LittleEndian.PutUint16(b[0:], extTimeExtraID)
	binary.LittleEndian.PutUint16(b[2:], 5) // a flag byte and one time
	b[4] = 1                                // the modification time is present
	binary.LittleEndian.PutUint32(b[5:], uint32(t.Unix()))
	return b
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// clampModTime maps t into the range both ZIP time fields can represent;
// the zero time becomes the earliest representable one.
func clampModTime(t time.Time) time.Time {
	switch {
	case t.Before(earliestModTime):
		return earliestModTime
	case t.After(latestModTime):
		return latestModTime
	}
	return t
}
