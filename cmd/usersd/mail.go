package main

import "github.com/usersd/usersd/commands"

// linkSecrets is the derivation of invitation link secrets under key (the
// USERSD_TOKEN_KEY, or by default a key derived from USERSD_JWT_SECRET).
// Every replica and the mailer must use the same key.
func linkSecrets(key []byte) commands.LinkSecrets {
	s, err := commands.NewHMACLinkSecrets(key)
	if err != nil {
		panic(err) // the configuration checked the key's size
	}
	return s
}
