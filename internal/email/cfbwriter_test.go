package email

import (
	"encoding/binary"
	"sort"
	"strings"
	"unicode/utf16"
)

// This file holds a minimal writer of compound files (MS-CFB version 3), so
// that tests can build Outlook .msg files. It supports what a .msg needs:
// nested storages, streams in the mini stream (< 4096 bytes) and in regular
// sectors, and a FAT addressed from the header (files up to ~6 MiB).

const (
	cfbSector     = 512
	cfbMini       = 64
	cfbCutoff     = 4096
	cfbEndOfChain = 0xFFFFFFFE
	cfbFree       = 0xFFFFFFFF
	cfbFATSect    = 0xFFFFFFFD
	cfbNoStream   = 0xFFFFFFFF
)

// cfbNode is a storage (children set) or a stream (data set).
type cfbNode struct {
	name     string
	data     []byte
	storage  bool
	children []*cfbNode
	clsid    [16]byte

	id, left, right, child uint32
	red                    bool
	start                  uint32
}

func cfbStorage(name string, children ...*cfbNode) *cfbNode {
	return &cfbNode{name: name, storage: true, children: children}
}

func cfbStream(name string, data []byte) *cfbNode {
	return &cfbNode{name: name, data: data}
}

// cfbLess orders directory names as the format requires: shorter first,
// then by upper-cased UTF-16 code units.
func cfbLess(a, b string) bool {
	ua, ub := utf16.Encode([]rune(strings.ToUpper(a))), utf16.Encode([]rune(strings.ToUpper(b)))
	if len(ua) != len(ub) {
		return len(ua) < len(ub)
	}
	for i := range ua {
		if ua[i] != ub[i] {
			return ua[i] < ub[i]
		}
	}
	return false
}

// buildCFB serialises root (a storage standing for the Root Entry).
func buildCFB(root *cfbNode) []byte {
	// Number the entries depth-first, root first.
	var entries []*cfbNode
	var number func(n *cfbNode)
	number = func(n *cfbNode) {
		n.id = uint32(len(entries))
		entries = append(entries, n)
		sort.Slice(n.children, func(i, j int) bool { return cfbLess(n.children[i].name, n.children[j].name) })
		for _, c := range n.children {
			number(c)
		}
	}
	number(root)
	for _, n := range entries {
		n.left, n.right, n.child = cfbNoStream, cfbNoStream, cfbNoStream
	}
	for _, n := range entries {
		if len(n.children) > 0 {
			h := cfbTreeHeight(len(n.children))
			n.child = cfbTree(n.children, 0, h, len(n.children) == (1<<h)-1)
		}
	}

	// Lay out the mini stream and the regular streams.
	var mini []byte
	var miniFAT []uint32
	var regular [][]byte
	var regularOwners []*cfbNode
	for _, n := range entries[1:] {
		if n.storage {
			continue
		}
		switch {
		case len(n.data) == 0:
			n.start = cfbEndOfChain
		case len(n.data) < cfbCutoff:
			n.start = uint32(len(mini) / cfbMini)
			count := (len(n.data) + cfbMini - 1) / cfbMini
			for i := 0; i < count; i++ {
				next := uint32(len(miniFAT) + 1)
				if i == count-1 {
					next = cfbEndOfChain
				}
				miniFAT = append(miniFAT, next)
			}
			buf := make([]byte, count*cfbMini)
			copy(buf, n.data)
			mini = append(mini, buf...)
		default:
			regular = append(regular, n.data)
			regularOwners = append(regularOwners, n)
		}
	}

	var sectors [][]byte
	var fat []uint32
	addChain := func(data []byte) uint32 {
		if len(data) == 0 {
			return cfbEndOfChain
		}
		start := uint32(len(sectors))
		count := (len(data) + cfbSector - 1) / cfbSector
		for i := 0; i < count; i++ {
			s := make([]byte, cfbSector)
			copy(s, data[i*cfbSector:])
			sectors = append(sectors, s)
			next := uint32(len(sectors))
			if i == count-1 {
				next = cfbEndOfChain
			}
			fat = append(fat, next)
		}
		return start
	}
	for i, data := range regular {
		regularOwners[i].start = addChain(data)
	}
	root.start = addChain(mini)
	root.data = nil
	miniFATBytes := make([]byte, 0, len(miniFAT)*4)
	for _, v := range miniFAT {
		miniFATBytes = binary.LittleEndian.AppendUint32(miniFATBytes, v)
	}
	// Pad the mini FAT with free entries to a whole sector.
	for len(miniFATBytes)%cfbSector != 0 {
		miniFATBytes = binary.LittleEndian.AppendUint32(miniFATBytes, cfbFree)
	}
	miniFATStart := addChain(miniFATBytes)
	miniFATSectors := len(miniFATBytes) / cfbSector

	dir := make([]byte, 0, ((len(entries)+3)/4)*cfbSector)
	for _, n := range entries {
		dir = append(dir, cfbDirEntry(n, len(mini))...)
	}
	for len(dir)%cfbSector != 0 {
		dir = append(dir, cfbEmptyEntry()...)
	}
	dirStart := addChain(dir)

	// FAT sectors go last; they must also describe themselves.
	nFAT := 1
	for (len(sectors)+nFAT)*4 > nFAT*cfbSector {
		nFAT++
	}
	fatStart := uint32(len(sectors))
	for i := 0; i < nFAT; i++ {
		fat = append(fat, cfbFATSect)
	}
	for len(fat) < nFAT*cfbSector/4 {
		fat = append(fat, cfbFree)
	}
	for i := 0; i < nFAT; i++ {
		s := make([]byte, cfbSector)
		for j := 0; j < cfbSector/4; j++ {
			binary.LittleEndian.PutUint32(s[j*4:], fat[i*cfbSector/4+j])
		}
		sectors = append(sectors, s)
	}

	hdr := make([]byte, cfbSector)
	binary.LittleEndian.PutUint64(hdr[0:], 0xE11AB1A1E011CFD0)
	binary.LittleEndian.PutUint16(hdr[24:], 0x003E)
	binary.LittleEndian.PutUint16(hdr[26:], 0x0003)
	binary.LittleEndian.PutUint16(hdr[28:], 0xFFFE)
	binary.LittleEndian.PutUint16(hdr[30:], 9)
	binary.LittleEndian.PutUint16(hdr[32:], 6)
	binary.LittleEndian.PutUint32(hdr[44:], uint32(nFAT))
	binary.LittleEndian.PutUint32(hdr[48:], dirStart)
	binary.LittleEndian.PutUint32(hdr[56:], cfbCutoff)
	if miniFATSectors == 0 {
		binary.LittleEndian.PutUint32(hdr[60:], cfbEndOfChain)
	} else {
		binary.LittleEndian.PutUint32(hdr[60:], miniFATStart)
	}
	binary.LittleEndian.PutUint32(hdr[64:], uint32(miniFATSectors))
	binary.LittleEndian.PutUint32(hdr[68:], cfbEndOfChain)
	for i := 0; i < 109; i++ {
		v := uint32(cfbFree)
		if i < nFAT {
			v = fatStart + uint32(i)
		}
		binary.LittleEndian.PutUint32(hdr[76+i*4:], v)
	}
	out := hdr
	for _, s := range sectors {
		out = append(out, s...)
	}
	return out
}

func cfbTreeHeight(n int) int {
	h := 0
	for (1<<h)-1 < n {
		h++
	}
	return h
}

// cfbTree links sorted siblings into a size-balanced binary tree and returns
// its root id. Such a tree has its leaves on the last two levels; when it is
// not perfect the nodes of the last level are red and all others black, which
// gives every path the same number of black nodes and no red-red edge.
func cfbTree(nodes []*cfbNode, depth, height int, perfect bool) uint32 {
	if len(nodes) == 0 {
		return cfbNoStream
	}
	mid := len(nodes) / 2
	n := nodes[mid]
	n.red = !perfect && depth == height-1
	n.left = cfbTree(nodes[:mid], depth+1, height, perfect)
	n.right = cfbTree(nodes[mid+1:], depth+1, height, perfect)
	return n.id
}

func cfbDirEntry(n *cfbNode, miniSize int) []byte {
	e := make([]byte, 128)
	name := utf16.Encode([]rune(n.name))
	if len(name) > 31 {
		name = name[:31]
	}
	for i, u := range name {
		binary.LittleEndian.PutUint16(e[i*2:], u)
	}
	binary.LittleEndian.PutUint16(e[64:], uint16((len(name)+1)*2))
	switch {
	case n.id == 0:
		e[66] = 5
	case n.storage:
		e[66] = 1
	default:
		e[66] = 2
	}
	e[67] = 1
	if n.red {
		e[67] = 0
	}
	binary.LittleEndian.PutUint32(e[68:], n.left)
	binary.LittleEndian.PutUint32(e[72:], n.right)
	binary.LittleEndian.PutUint32(e[76:], n.child)
	copy(e[80:96], n.clsid[:])
	switch {
	case n.id == 0:
		binary.LittleEndian.PutUint32(e[116:], n.start)
		binary.LittleEndian.PutUint32(e[120:], uint32(miniSize))
	case n.storage:
		binary.LittleEndian.PutUint32(e[116:], 0)
	default:
		binary.LittleEndian.PutUint32(e[116:], n.start)
		binary.LittleEndian.PutUint32(e[120:], uint32(len(n.data)))
	}
	return e
}

func cfbEmptyEntry() []byte {
	e := make([]byte, 128)
	binary.LittleEndian.PutUint32(e[68:], cfbNoStream)
	binary.LittleEndian.PutUint32(e[72:], cfbNoStream)
	binary.LittleEndian.PutUint32(e[76:], cfbNoStream)
	return e
}
