package email

import (
	"archive/zip"
	"bytes"
	"testing"
)

// zipOf builds a ZIP archive holding the named (empty) files.
func zipOf(t *testing.T, names ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for _, n := range names {
		f, err := w.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// at returns size bytes of zeros with magic written at offset.
func at(size, offset int, magic string) []byte {
	b := make([]byte, size)
	copy(b[offset:], magic)
	return b
}

func TestDetectKind(t *testing.T) {
	t.Parallel()
	cfb := func(extra ...[]byte) []byte {
		b := append([]byte{}, cfbMagic...)
		b = append(b, make([]byte, 504)...)
		for _, e := range extra {
			b = append(b, e...)
		}
		return b
	}
	tests := []struct {
		name, file, ct string
		data           []byte
		want           string
	}{
		{"empty", "notes.txt", "text/plain", nil, KindEmpty},
		{"PE named as a PDF", "invoice.pdf", "application/pdf", []byte("MZ\x90\x00\x03"), KindExecutable},
		{"ELF", "run", "", []byte("\x7fELF\x02\x01"), KindExecutable},
		{"shortcut", "doc.lnk", "", append([]byte{0x4C, 0, 0, 0, 0x01, 0x14, 0x02, 0}, 0, 0), KindExecutable},
		{"shebang", "setup", "", []byte("#!/bin/sh\ncurl x | sh\n"), KindScript},
		{"JavaScript by name", "invoice.js", "application/octet-stream", []byte("var a = 1;"), KindScript},
		{"HTA by name", "payment.hta", "", []byte("<script>x</script>"), KindScript},
		{"HTML content behind a text name", "remittance.txt", "text/plain", []byte("\ufeff  <!DOCTYPE html><html>"), KindHTML},
		{"HTML by name", "invoice.htm", "application/octet-stream", []byte("Pay now"), KindHTML},
		{"SVG", "image.svg", "image/svg+xml", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script/></svg>`), KindHTML},
		{"HTML declared as an image", "photo.png", "image/png", []byte("<html><body><form>"), KindHTML},
		{"PDF", "invoice.pdf", "application/pdf", []byte("%PDF-1.7\n"), KindDocument},
		{"RTF", "letter.doc", "application/msword", []byte(`{\rtf1\ansi`), KindDocument},
		{"OOXML", "report.docx", "", zipOf(t, "[Content_Types].xml", "word/document.xml"), KindDocument},
		{"OOXML with macros named docx", "report.docx", "", zipOf(t, "[Content_Types].xml", "word/document.xml", "word/vbaProject.bin"), KindMacroDocument},
		{"Java archive named zip", "files.zip", "application/zip", zipOf(t, "META-INF/MANIFEST.MF", "a.class"), KindExecutable},
		{"plain ZIP", "files.zip", "application/zip", zipOf(t, "a.txt", "b.exe"), KindArchive},
		{"broken ZIP", "files.zip", "", []byte("PK\x03\x04garbage"), KindArchive},
		{"ZIP claiming too many entries", "report.docx", "", append([]byte("PK\x03\x04"), []byte("PK\x05\x06\x00\x00\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")...), KindArchive},
		{"RAR", "x.pdf", "", []byte("Rar!\x1a\x07\x01\x00"), KindArchive},
		{"7z", "x", "", []byte{'7', 'z', 0xBC, 0xAF, 0x27, 0x1C, 0, 4}, KindArchive},
		{"gzip", "x.gz", "", []byte{0x1f, 0x8b, 8, 0}, KindArchive},
		{"ISO 9660", "scan.img", "", at(0x8010, 0x8001, "CD001"), KindDiskImage},
		{"VHDX", "disk", "", []byte("vhdxfile\x00\x00"), KindDiskImage},
		{"disk image by name", "setup.iso", "application/octet-stream", []byte("not yet recognised"), KindDiskImage},
		{"Office with a VBA project", "budget.xls", "", cfb(utf16le("_VBA_PROJECT_CUR")), KindMacroDocument},
		{"Word with Macros storage", "letter.doc", "", cfb(utf16le("Macros"), []byte{0, 0}), KindMacroDocument},
		{"Office without macros", "letter.doc", "", cfb(utf16le("WordDocument")), KindDocument},
		{"installer", "setup.msi", "", cfb(), KindExecutable},
		{"Outlook item", "fwd.msg", "", cfb(utf16le("__substg1.0_0037001F")), KindEmail},
		{"PNG", "logo.png", "image/png", []byte("\x89PNG\r\n\x1a\n"), KindImage},
		{"JPEG named exe", "photo.exe", "", []byte("\xff\xd8\xff\xe0"), KindImage},
		{"GIF", "p.gif", "", []byte("GIF89a\x01\x00"), KindImage},
		{"calendar by type", "invite.ics", "text/calendar", []byte("BEGIN:VCALENDAR\r\nVERSION:2.0"), KindCalendar},
		{"calendar by content", "invite", "application/octet-stream", []byte("BEGIN:VCALENDAR\r\n"), KindCalendar},
		{"unknown bytes", "data.bin", "application/octet-stream", []byte{1, 2, 3, 4}, KindOther},
		{"macro-enabled type", "x", "application/vnd.ms-excel.sheet.macroEnabled.12", []byte{1, 2}, KindMacroDocument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := detectKind(tt.file, tt.ct, tt.data); got != tt.want {
				t.Errorf("detectKind(%q, %q) = %q, want %q", tt.file, tt.ct, got, tt.want)
			}
		})
	}
}

func TestIsInline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind, disposition, cid string
		want                   bool
	}{
		{KindImage, "inline", "", true},
		{KindImage, "", "<logo@x>", true},
		{KindImage, "attachment", "<logo@x>", false},
		{KindImage, "", "", false},
		{KindDocument, "inline", "<a@x>", false},
		{KindExecutable, "inline", "", false},
	}
	for _, tt := range tests {
		if got := isInline(tt.kind, tt.disposition, tt.cid); got != tt.want {
			t.Errorf("isInline(%q, %q, %q) = %v, want %v", tt.kind, tt.disposition, tt.cid, got, tt.want)
		}
	}
}

func TestZipEntries(t *testing.T) {
	t.Parallel()
	if n, ok := zipEntries(zipOf(t, "a", "b", "c")); !ok || n != 3 {
		t.Errorf("zipEntries = %d, %v; want 3", n, ok)
	}
	if n, ok := zipEntries([]byte("PK\x05\x06\x00\x00\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")); !ok || n <= maxZipEntries {
		t.Errorf("zipEntries of a claimed 65535 = %d, %v", n, ok)
	}
	if _, ok := zipEntries([]byte("PK\x03\x04 no directory")); ok {
		t.Error("zipEntries found a directory in a truncated ZIP")
	}
}
