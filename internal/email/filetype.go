package email

import (
	"archive/zip"
	"bytes"
	"path"
	"strings"
)

// Attachment kinds, the values of Attachment.Kind.
const (
	KindExecutable    = "executable"     // PE, ELF, Mach-O, installers, Java and Android packages, shortcuts
	KindScript        = "script"         // JavaScript, VBScript, PowerShell, batch, HTA and the like
	KindMacroDocument = "macro-document" // Office documents that carry VBA macros
	KindHTML          = "html"           // HTML, MHTML and SVG (which can run scripts)
	KindArchive       = "archive"        // ZIP, RAR, 7z, gzip, bzip2, xz, tar, CAB and the like
	KindDiskImage     = "disk-image"     // ISO, IMG, VHD(X), DMG
	KindDocument      = "document"       // PDF, Office without macros, OpenDocument, RTF, text
	KindImage         = "image"          // pictures
	KindCalendar      = "calendar"       // iCalendar invitations (.ics)
	KindEmail         = "email"          // attached emails (.eml, .msg)
	KindEmpty         = "empty"          // no content at all
	KindOther         = "other"          // anything else
)

// kindRisk orders the kinds from the most to the least dangerous; when the
// name, the declared type and the content disagree and the content proves
// nothing, the most dangerous reading wins.
var kindRisk = map[string]int{
	KindExecutable: 10, KindScript: 9, KindMacroDocument: 8, KindHTML: 7, KindDiskImage: 6,
	KindArchive: 5, KindDocument: 4, KindCalendar: 3, KindEmail: 2, KindImage: 1,
}

// extKinds maps lower-case file extensions to kinds.
var extKinds = func() map[string]string {
	m := map[string]string{}
	add := func(kind string, exts ...string) {
		for _, e := range exts {
			m["."+e] = kind
		}
	}
	add(KindExecutable, "exe", "dll", "scr", "com", "pif", "cpl", "msi", "msp", "mst", "jar", "apk", "app",
		"lnk", "chm", "hlp", "sys", "drv", "ocx", "gadget", "msc", "application", "appx", "appxbundle",
		"msix", "msixbundle", "appref-ms", "xll", "wll", "xbap", "elf", "run", "deb", "rpm")
	add(KindScript, "js", "jse", "mjs", "vbs", "vbe", "wsf", "wsh", "wsc", "ps1", "psm1", "psd1", "bat", "cmd",
		"hta", "sh", "bash", "py", "pl", "rb", "php", "sct", "vb", "vba", "ahk", "au3", "reg", "url", "scf",
		"iqy", "inf", "settingcontent-ms", "applescript", "scpt", "command")
	add(KindMacroDocument, "docm", "dotm", "xlsm", "xltm", "xlam", "xla", "xlsb", "pptm", "potm", "ppam",
		"ppsm", "sldm", "slk")
	add(KindHTML, "htm", "html", "shtml", "shtm", "xhtml", "xht", "mht", "mhtml", "svg", "svgz")
	add(KindArchive, "zip", "zipx", "rar", "7z", "gz", "tgz", "bz2", "tbz", "tbz2", "xz", "txz", "tar",
		"cab", "arj", "lzh", "lha", "ace", "z", "r00", "r01", "zst", "uue", "xxe")
	add(KindDiskImage, "iso", "img", "vhd", "vhdx", "dmg", "udf")
	add(KindDocument, "pdf", "doc", "dot", "docx", "dotx", "xls", "xlt", "xlsx", "xltx", "ppt", "pot", "pps",
		"ppsx", "pptx", "potx", "odt", "ods", "odp", "rtf", "txt", "csv", "one", "xps", "oxps", "pub")
	add(KindImage, "png", "jpg", "jpeg", "jpe", "jfif", "gif", "bmp", "webp", "tif", "tiff", "ico", "heic",
		"heif", "emf", "wmf", "avif")
	add(KindCalendar, "ics", "vcs", "ical", "ifb")
	add(KindEmail, "eml", "msg")
	return m
}()

// typeKinds maps declared content types to kinds.
var typeKinds = map[string]string{
	"text/html": KindHTML, "application/xhtml+xml": KindHTML, "image/svg+xml": KindHTML,
	"message/rfc822": KindEmail, "application/vnd.ms-outlook": KindEmail, "message/global": KindEmail,
	"text/calendar": KindCalendar, "application/ics": KindCalendar,
	"application/pdf": KindDocument, "application/msword": KindDocument, "application/rtf": KindDocument,
	"text/rtf": KindDocument, "application/vnd.ms-excel": KindDocument, "application/vnd.ms-powerpoint": KindDocument,
	"text/plain": KindDocument, "text/csv": KindDocument,
	"application/zip": KindArchive, "application/x-zip-compressed": KindArchive, "application/x-rar-compressed": KindArchive,
	"application/vnd.rar": KindArchive, "application/x-7z-compressed": KindArchive, "application/gzip": KindArchive,
	"application/x-gzip": KindArchive, "application/x-tar": KindArchive, "application/x-bzip2": KindArchive,
	"application/vnd.ms-cab-compressed": KindArchive,
	"application/x-msdownload":          KindExecutable, "application/x-dosexec": KindExecutable,
	"application/x-msdos-program": KindExecutable, "application/vnd.microsoft.portable-executable": KindExecutable,
	"application/java-archive": KindExecutable, "application/vnd.android.package-archive": KindExecutable,
	"application/x-ms-shortcut": KindExecutable, "application/x-msi": KindExecutable,
	"application/javascript": KindScript, "text/javascript": KindScript, "application/x-javascript": KindScript,
	"application/x-sh": KindScript, "application/x-bat": KindScript, "text/vbscript": KindScript,
	"application/hta": KindScript, "application/x-powershell": KindScript,
	"application/x-iso9660-image": KindDiskImage, "application/x-apple-diskimage": KindDiskImage,
}

func typeKind(ct string) string {
	if k, ok := typeKinds[ct]; ok {
		return k
	}
	switch {
	case strings.HasPrefix(ct, "image/"):
		return KindImage
	case strings.Contains(ct, "macroenabled"):
		return KindMacroDocument
	case strings.HasPrefix(ct, "application/vnd.openxmlformats-officedocument."),
		strings.HasPrefix(ct, "application/vnd.oasis.opendocument."):
		return KindDocument
	}
	return ""
}

// detectKind says what an attachment is, from its content first: magic
// bytes are proof and win over the name and the declared type (an .exe
// named invoice.pdf is an executable, a .docx carrying vbaProject.bin a
// macro document). Content without magic bytes (text, or bytes no format
// claims) is judged by its name, its declared type and what the text looks
// like, taking the most dangerous reading.
func detectKind(name, ct string, data []byte) string {
	if len(data) == 0 {
		return KindEmpty
	}
	ext := strings.ToLower(path.Ext(name))
	if k := magicKind(data, ext); k != "" {
		return k
	}
	best := ""
	for _, k := range []string{extKinds[ext], typeKind(strings.ToLower(ct)), textKind(data)} {
		if k != "" && (best == "" || kindRisk[k] > kindRisk[best]) {
			best = k
		}
	}
	if best == "" {
		return KindOther
	}
	return best
}

// Magic numbers.
var (
	magicLNK     = []byte{0x4C, 0x00, 0x00, 0x00, 0x01, 0x14, 0x02, 0x00}
	magicOneNote = []byte{0xE4, 0x52, 0x5C, 0x7B, 0x8C, 0xD8, 0xA7, 0x4D}
	magic7z      = []byte{'7', 'z', 0xBC, 0xAF, 0x27, 0x1C}
	magicXZ      = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}
	magicZstd    = []byte{0x28, 0xB5, 0x2F, 0xFD}
	utf16VBA     = utf16le("_VBA_PROJECT")
	utf16Macros  = append(utf16le("Macros"), 0, 0)
	utf16Substg  = utf16le("__substg1.0_")
)

func utf16le(s string) []byte {
	b := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		b = append(b, s[i], 0)
	}
	return b
}

// magicKind returns the kind the content proves, or "".
func magicKind(b []byte, ext string) string {
	has := func(off int, magic string) bool {
		return len(b) >= off+len(magic) && string(b[off:off+len(magic)]) == magic
	}
	switch {
	case has(0, "MZ"), has(0, "\x7fELF"), has(0, "\xfe\xed\xfa\xce"), has(0, "\xfe\xed\xfa\xcf"),
		has(0, "\xce\xfa\xed\xfe"), has(0, "\xcf\xfa\xed\xfe"), has(0, "\xca\xfe\xba\xbe"),
		bytes.HasPrefix(b, magicLNK), has(0, "ITSF"):
		return KindExecutable
	case has(0, "#!"):
		return KindScript
	case bytes.HasPrefix(b, cfbMagic):
		return cfbKind(b, ext)
	case has(0, "PK\x03\x04"), has(0, "PK\x05\x06"):
		return zipKind(b)
	case has(0, "Rar!\x1a\x07"), bytes.HasPrefix(b, magic7z), has(0, "\x1f\x8b"), has(0, "BZh"),
		bytes.HasPrefix(b, magicXZ), bytes.HasPrefix(b, magicZstd), has(0, "MSCF"), has(257, "ustar"),
		has(0, "\x60\xea"), has(7, "**ACE**"), has(2, "-lh"):
		return KindArchive
	case has(0x8001, "CD001"), has(0x8801, "CD001"), has(0x9001, "CD001"), has(0x8001, "BEA01"),
		has(0, "vhdxfile"), has(0, "conectix"),
		len(b) >= 512 && (string(b[len(b)-512:len(b)-504]) == "conectix" || string(b[len(b)-512:len(b)-508]) == "koly"):
		return KindDiskImage
	case bytes.Contains(b[:min(len(b), 1024)], []byte("%PDF-")), has(0, `{\rt`), bytes.HasPrefix(b, magicOneNote):
		return KindDocument
	case has(0, "\x89PNG"), has(0, "\xff\xd8\xff"), has(0, "GIF87a"), has(0, "GIF89a"),
		has(0, "RIFF") && has(8, "WEBP"), has(0, "II*\x00"), has(0, "MM\x00*"), has(4, "ftypheic"),
		has(4, "ftypavif"), has(0, "BM") && len(b) > 14 && has(6, "\x00\x00\x00\x00"):
		return KindImage
	}
	return ""
}

// cfbKind tells the compound files apart: Outlook items, installers (known
// only by name) and Office documents with or without a VBA project.
func cfbKind(b []byte, ext string) string {
	switch {
	case ext == ".msi" || ext == ".msp" || ext == ".mst":
		return KindExecutable
	case bytes.Contains(b, utf16VBA) || bytes.Contains(b, utf16Macros):
		return KindMacroDocument
	case bytes.Contains(b, utf16Substg):
		return KindEmail
	}
	return KindDocument
}

// zipKind tells the ZIP-based formats apart by the names they hold: Office
// Open XML (with or without vbaProject.bin), OpenDocument, Java, Android and
// Windows app packages, else an archive.
func zipKind(b []byte) string {
	if n, ok := zipEntries(b); !ok || n > maxZipEntries {
		return KindArchive
	}
	r, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return KindArchive
	}
	office, macros := false, false
	for i, f := range r.File {
		if i >= 2000 {
			break
		}
		n := strings.ToLower(f.Name)
		switch {
		case strings.HasSuffix(n, "vbaproject.bin"):
			macros = true
		case n == "[content_types].xml", n == "mimetype", strings.HasPrefix(n, "word/"),
			strings.HasPrefix(n, "xl/"), strings.HasPrefix(n, "ppt/"):
			office = true
		case n == "meta-inf/manifest.mf", n == "androidmanifest.xml", n == "appxmanifest.xml", n == "classes.dex":
			return KindExecutable
		}
	}
	switch {
	case office && macros:
		return KindMacroDocument
	case office:
		return KindDocument
	}
	return KindArchive
}

// maxZipEntries bounds the central directory zipKind reads: a ZIP
// claiming more entries is an archive, whatever it holds, and reading its
// directory would cost memory out of proportion to the file.
const maxZipEntries = 5000

// zipEntries reads the entry count of a ZIP's end-of-central-directory
// record, found in the last 64 KiB; ok is false when there is none.
func zipEntries(b []byte) (n int, ok bool) {
	tail := b[max(0, len(b)-(65535+22)):]
	i := bytes.LastIndex(tail, []byte("PK\x05\x06"))
	if i < 0 || len(tail)-i < 22 {
		return 0, false
	}
	rec := tail[i:]
	return int(rec[10]) | int(rec[11])<<8, true
}

// textKind looks at the start of content without magic bytes for HTML,
// SVG and iCalendar.
func textKind(b []byte) string {
	head := b[:min(len(b), 1024)]
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	head = bytes.TrimLeft(head, " \t\r\n")
	lower := bytes.ToLower(head)
	switch {
	case bytes.HasPrefix(lower, []byte("begin:vcalendar")):
		return KindCalendar
	case bytes.HasPrefix(lower, []byte("<!doctype html")), bytes.HasPrefix(lower, []byte("<html")),
		bytes.HasPrefix(lower, []byte("<head")), bytes.HasPrefix(lower, []byte("<body")),
		bytes.HasPrefix(lower, []byte("<script")), bytes.HasPrefix(lower, []byte("<svg")),
		bytes.HasPrefix(lower, []byte("<?xml")) && bytes.Contains(lower, []byte("<svg")),
		bytes.HasPrefix(lower, []byte("<meta")), bytes.HasPrefix(lower, []byte("<iframe")):
		return KindHTML
	}
	return ""
}
