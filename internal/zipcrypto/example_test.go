package zipcrypto_test

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/mail2archer/mail2archer/internal/zipcrypto"
)

// Attachments go into one archive protected with the conventional
// password; any ZIP reader lists the entries, but their content opens
// only with the password.
func ExampleNewWriter() {
	received := time.Date(2025, time.March, 14, 15, 9, 26, 0, time.UTC)
	var archive bytes.Buffer
	w := zipcrypto.NewWriter(&archive, "infected")
	for _, a := range []struct{ name, content string }{
		{"invoice.html", "<script>steal()</script>"},
		{"pay.exe", "MZ..."},
	} {
		f, err := w.Create(a.name, received)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := io.WriteString(f, a.content); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	zr, err := zip.NewReader(bytes.NewReader(archive.Bytes()), int64(archive.Len()))
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range zr.File {
		fmt.Printf("%s: %d bytes, encrypted %v, modified %s\n",
			f.Name, f.UncompressedSize64, f.Flags&0x1 != 0, f.Modified.UTC().Format(time.DateTime))
	}
	// Output:
	// invoice.html: 24 bytes, encrypted true, modified 2025-03-14 15:09:26
	// pay.exe: 5 bytes, encrypted true, modified 2025-03-14 15:09:26
}
