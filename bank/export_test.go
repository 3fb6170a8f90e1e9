package bank

// HoldCertifyWorkers takes every certification worker until release is
// called: a stand-in for certification requests keeping them all busy.
func (b *Bank) HoldCertifyWorkers() (release func()) {
	for range cap(b.certifySlots) {
		b.certifySlots <- struct{}{}
	}
	return func() {
		for range cap(b.certifySlots) {
			<-b.certifySlots
		}
	}
}

// Routes lists what the bank serves, as "METHOD /path" mux patterns.
func (b *Bank) Routes() []string {
	var out []string
	for _, rt := range b.routes() {
		out = append(out, rt.method+" "+rt.path)
	}
	return out
}
