package engine

// AppendBytes copies b onto the end of the packet m, chaining new segments
// from p when the last one is full or not writable (a clone's, or external
// memory): a shared buffer is never written.
func (cs *Caches) AppendBytes(m Mbuf, p *Pool, b []byte) error {
	if m.PktLen()+len(b) > MaxPacket {
		return ErrTooLong
	}
	seg := m.last()
	for len(b) > 0 {
		if seg.Tailroom() == 0 { // full, or shared: a segment of our own
			s, err := cs.Alloc(p)
			if err != nil {
				return err
			}
			if err := m.Chain(s); err != nil { // shared (length checked above)
				cs.Free(s)
				return err
			}
			seg = s
		}
		k := min(seg.Tailroom(), len(b))
		dst, err := m.Append(k)
		if err != nil {
			return err
		}
		copy(dst, b[:k])
		b = b[k:]
	}
	return nil
}
