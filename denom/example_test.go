package denom_test

import (
	"fmt"

	"github.com/otpcash/otpcash/denom"
)

// A customer with a 5.00 note and a 2.00 coin pays 3.50 at a shop that
// holds two 0.50 coins and a 1.00 coin: it hands over the note and gets
// 1.50 back.
func ExampleBest() {
	customer := denom.Counts{500: 1, 200: 1}
	shop := denom.Counts{50: 2, 100: 1}
	plan, err := denom.Best(350, customer, shop)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("send", plan.Send, "change", plan.Change)
	_, err = denom.Best(347, customer, shop)
	fmt.Println(err)
	// Output:
	// send 1x5.00 change 1x1.00 + 1x0.50
	// cannot pay 3.47 exactly: the payer's coins reach 5.00 at the nearest, and the payee cannot give 1.53 in change from its 1x1.00 + 2x0.50
}

func ExampleSet_Withdrawal() {
	eur, _ := denom.Default("EUR")
	mix, _ := eur.Withdrawal(2000)
	fmt.Println(mix)
	fmt.Println("pays every amount up to", eur.Reach(2000), "cents exactly")
	// Output:
	// 1x10.00 + 3x2.00 + 2x1.00 + 2x0.50 + 4x0.20 + 1x0.10 + 1x0.05 + 2x0.02 + 1x0.01
	// pays every amount up to 610 cents exactly
}
