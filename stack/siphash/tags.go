package siphash

// Domain tags keep the stack's uses of its one secret key apart: each use
// hashes its tag in, so no two of them ever compute the same function, and
// one use's outputs tell nothing about another's. They are kept together so
// that no two uses can take the same tag.
const (
	TagIPID         uint64 = iota + 1 // IPv4 ID counters per destination (ip_idents)
	TagIPIDRandom                     // the random jumps of idle ID counters
	TagICMPHost                       // the ICMP rate limiter's destination slots
	TagICMPRandom                     // the ICMP rate limiter's random spend
	TagPort                           // ephemeral port offsets (RFC 6056)
	TagSteer                          // software steering of flows to shards (RPS)
	TagReusePort                      // spreading flows over a UDP reuseport group
	TagTCPISN                         // TCP initial sequence numbers (RFC 6528)
	TagSYNCookie                      // TCP SYN cookies (RFC 4987 3.6)
	TagChallenge                      // the per-second challenge-ACK budget (RFC 5961 7)
	TagTCPTimestamp                   // TCP timestamp offsets per connection (RFC 7323 7.1)
)
