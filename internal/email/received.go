package email

import (
	"net/netip"
)

// microsoftRelays are the address ranges Exchange Online relays mail from
// and between (Microsoft's published Exchange Online ranges and the IPv6
// space of its data centres).
var microsoftRelays = []netip.Prefix{
	netip.MustParsePrefix("40.92.0.0/15"),
	netip.MustParsePrefix("40.107.0.0/16"),
	netip.MustParsePrefix("52.100.0.0/14"),
	netip.MustParsePrefix("104.47.0.0/17"),
	netip.MustParsePrefix("40.96.0.0/13"),
	netip.MustParsePrefix("40.104.0.0/15"),
	netip.MustParsePrefix("52.96.0.0/14"),
	netip.MustParsePrefix("132.245.0.0/16"),
	netip.MustParsePrefix("2a01:111::/32"),
	netip.MustParsePrefix("2603:1000::/24"),
	netip.MustParsePrefix("2620:1ec::/36"),
}

func isMicrosoftIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range microsoftRelays {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// connectingIP finds the address of the host that handed the message to
// the organisation: the first hop, from the recipient's side, outside
// Microsoft's and the organisation's relays. Exchange Online's own record
// of it (the CIP of X-Forefront-Antispam-Report) is preferred, unless it is
// one of Microsoft's relays or a hop sent by a host in an internal domain;
// otherwise the Received headers are walked from the top, skipping
// private addresses, Microsoft's relays (by address: the host names in
// Received are what the sender claimed) and hosts named in an internal
// domain. Hops below the first external one are written by hosts outside
// our control and are not believed.
func (a *analyzer) connectingIP(m *Message) string {
	relay := map[netip.Addr]bool{}
	for _, h := range m.Received {
		if ip, err := netip.ParseAddr(h.IP); err == nil && a.isInternal(h.From) {
			relay[ip.Unmap()] = true
		}
	}
	if ip, err := netip.ParseAddr(m.connectingIP); err == nil {
		ip = ip.Unmap()
		if isPublic(ip) && !isMicrosoftIP(ip) && !relay[ip] {
			return ip.String()
		}
	}
	for _, h := range m.Received {
		ip, err := netip.ParseAddr(h.IP)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		if !isPublic(ip) || isMicrosoftIP(ip) || relay[ip] {
			continue
		}
		return ip.String()
	}
	return ""
}
