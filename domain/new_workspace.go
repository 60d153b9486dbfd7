package domain

// WorkspaceSpec is what a new workspace is made of before it has an id and
// its owner an account: its name and its owner's address and name, checked
// and in their canonical forms.
type WorkspaceSpec struct {
	Name       string
	OwnerEmail Email
	OwnerName  string
}

// ParseWorkspaceSpec checks a new workspace's name and owner as Create
// does, so that a command refuses bad input before it reserves the owner's
// account. Its errors name the input: "ownerEmail", "name" or "ownerName".
func ParseWorkspaceSpec(name, ownerEmail, ownerName string) (WorkspaceSpec, error) {
	email, err := NormalizeEmail(ownerEmail)
	if err != nil {
		return WorkspaceSpec{}, about(err, "ownerEmail")
	}
	name, ownerName, err = workspaceNames(name, ownerName)
	if err != nil {
		return WorkspaceSpec{}, err
	}
	return WorkspaceSpec{Name: name, OwnerEmail: email, OwnerName: ownerName}, nil
}

// workspaceNames cleans a workspace's name and its owner's name.
func workspaceNames(name, ownerName string) (string, string, error) {
	name, err := cleanText(name, "workspace name", "name", 200)
	if err != nil {
		return "", "", err
	}
	ownerName, err = cleanText(ownerName, "owner name", "ownerName", 200)
	if err != nil {
		return "", "", err
	}
	return name, ownerName, nil
}
