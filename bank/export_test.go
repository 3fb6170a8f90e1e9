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
