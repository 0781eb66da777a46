package pivsim

// SetQuickAck turns TCP_QUICKACK on the vpcd connection on (the default)
// or off, to measure what it saves.
func (c *Card) SetQuickAck(on bool) { c.noQuickAck.Store(!on) }
