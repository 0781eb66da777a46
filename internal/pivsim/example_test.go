package pivsim_test

import (
	"fmt"

	"github.com/signet-project/signet/internal/pivsim"
)

// A Card answers APDUs without any reader: here SELECT of the PIV
// application and Yubico's GET VERSION.
func ExampleCard_Apdu() {
	card, err := pivsim.New(pivsim.Options{Serial: 1234567})
	if err != nil {
		panic(err)
	}
	card.Apdu([]byte{0x00, 0xa4, 0x04, 0x00, 0x05, 0xa0, 0x00, 0x00, 0x03, 0x08})
	fmt.Printf("% X\n", card.Apdu([]byte{0x00, 0xfd, 0x00, 0x00, 0x00}))
	// Output: 05 04 03 90 00
}
