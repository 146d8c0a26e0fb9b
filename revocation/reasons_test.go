package revocation

import "testing"

func TestParseReason(t *testing.T) {
	for in, want := range map[string]Reason{
		"keyCompromise": KeyCompromise, "key-compromise": KeyCompromise, "KEY_COMPROMISE": KeyCompromise,
		"1": KeyCompromise, "superseded": Superseded, "0": Unspecified, "cessation-of-operation": CessationOfOperation,
		"10": AACompromise, "privilegeWithdrawn": PrivilegeWithdrawn,
	} {
		got, err := ParseReason(in)
		if err != nil || got != want {
			t.Errorf("ParseReason(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"7", "11", "-1", "", "compromised", "key compromise!"} {
		if _, err := ParseReason(in); err == nil {
			t.Errorf("ParseReason(%q) accepted", in)
		}
	}
	if !Superseded.SubscriberMay() || CACompromise.SubscriberMay() || PrivilegeWithdrawn.SubscriberMay() {
		t.Error("subscriber set")
	}
	if CertificateHold.OperatorMay() || RemoveFromCRL.OperatorMay() || !CACompromise.OperatorMay() || Reason(7).OperatorMay() {
		t.Error("operator set")
	}
	if KeyCompromise.String() != "keyCompromise" || Reason(7).String() != "reason(7)" {
		t.Error("String")
	}
}
