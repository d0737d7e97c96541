package email

import (
	"bytes"
	"io"
)

// source is the raw MIME of one email: a file (the reported message as the
// service spools it) or bytes in memory (an attached email, a test).
type source struct {
	r    io.ReaderAt
	size int64
	// raw is the content when it is in memory, nil for a file: the model
	// keeps it as Message.Raw.
	raw []byte
}

func bytesSource(b []byte) source {
	return source{r: bytes.NewReader(b), size: int64(len(b)), raw: b}
}

// reader reads the whole source from its start; every call is independent.
func (s source) reader() io.Reader { return io.NewSectionReader(s.r, 0, s.size) }
