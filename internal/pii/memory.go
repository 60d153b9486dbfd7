package pii

import (
	"context"
	"sync"

	"github.com/google/uuid"
)

// MemoryKeyring keeps keys in memory: for tests of what seals and opens,
// and for tools that run without a database. Its keys die with the process.
type MemoryKeyring struct {
	mu        sync.Mutex
	keys      map[uuid.UUID]*Key
	destroyed map[uuid.UUID]bool
}

// NewMemoryKeyring returns an empty keyring.
func NewMemoryKeyring() *MemoryKeyring {
	return &MemoryKeyring{keys: make(map[uuid.UUID]*Key), destroyed: make(map[uuid.UUID]bool)}
}

var _ Keyring = (*MemoryKeyring)(nil)

func (m *MemoryKeyring) Lookup(_ context.Context, subjects []uuid.UUID) (map[uuid.UUID]*Key, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[uuid.UUID]*Key, len(subjects))
	for _, s := range subjects {
		if k, ok := m.keys[s]; ok {
			out[s] = k
		}
	}
	return out, nil
}

func (m *MemoryKeyring) Ensure(_ context.Context, subjects []uuid.UUID) (map[uuid.UUID]*Key, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[uuid.UUID]*Key, len(subjects))
	var erased []uuid.UUID
	for _, s := range subjects {
		switch k, ok := m.keys[s]; {
		case m.destroyed[s]:
			erased = append(erased, s)
		case ok:
			out[s] = k
		default:
			out[s] = NewKey()
			m.keys[s] = out[s]
		}
	}
	if erased != nil {
		return nil, &ErasedError{Subjects: erased}
	}
	return out, nil
}

// EnsureFresh is Ensure: the memory keyring has no cache.
func (m *MemoryKeyring) EnsureFresh(ctx context.Context, subjects []uuid.UUID) (map[uuid.UUID]*Key, error) {
	return m.Ensure(ctx, subjects)
}

// Destroy destroys subject's key for good.
func (m *MemoryKeyring) Destroy(_ context.Context, subject uuid.UUID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, subject)
	m.destroyed[subject] = true
	return nil
}
