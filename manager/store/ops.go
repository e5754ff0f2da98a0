package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// --- users ---

// CreateUser stores a new user; ErrExists if the name is taken.
func (s *Store) CreateUser(u User) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bUsers).Get([]byte(u.Name)) != nil {
			return ErrExists
		}
		u.CreatedAt, u.UpdatedAt = s.now(), s.now()
		return put(tx, bUsers, []byte(u.Name), u)
	})
}

// User returns the named user.
func (s *Store) User(name string) (u User, err error) {
	err = s.db.View(func(tx *bolt.Tx) error { u, err = get[User](tx, bUsers, []byte(name)); return err })
	return u, err
}

// UpdateUser applies fn to the named user atomically.
func (s *Store) UpdateUser(name string, fn func(*User) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		u, err := get[User](tx, bUsers, []byte(name))
		if err != nil {
			return err
		}
		if err := fn(&u); err != nil {
			return err
		}
		u.Name, u.UpdatedAt = name, s.now()
		return put(tx, bUsers, []byte(name), u)
	})
}

// DeleteUser removes a user and its tokens.
func (s *Store) DeleteUser(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bUsers).Get([]byte(name)) == nil {
			return ErrNotFound
		}
		toks, err := list[Token](tx, bTokens, func(t *Token) bool { return t.User == name })
		if err != nil {
			return err
		}
		for _, t := range toks {
			if err := tx.Bucket(bTokens).Delete([]byte(t.ID)); err != nil {
				return err
			}
		}
		return tx.Bucket(bUsers).Delete([]byte(name))
	})
}

// Users lists all users ordered by name.
func (s *Store) Users() (out []User, err error) {
	err = s.db.View(func(tx *bolt.Tx) error { out, err = list[User](tx, bUsers, nil); return err })
	return out, err
}

// --- tokens ---

// CreateToken stores a token (ID must be unique).
func (s *Store) CreateToken(t Token) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bUsers).Get([]byte(t.User)) == nil {
			return ErrNotFound
		}
		if tx.Bucket(bTokens).Get([]byte(t.ID)) != nil {
			return ErrExists
		}
		t.CreatedAt = s.now()
		return put(tx, bTokens, []byte(t.ID), t)
	})
}

// Token returns a token by ID.
func (s *Store) Token(id string) (t Token, err error) {
	err = s.db.View(func(tx *bolt.Tx) error { t, err = get[Token](tx, bTokens, []byte(id)); return err })
	return t, err
}

// TouchToken records a use of the token.
func (s *Store) TouchToken(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		t, err := get[Token](tx, bTokens, []byte(id))
		if err != nil {
			return err
		}
		t.LastUsed = s.now()
		return put(tx, bTokens, []byte(id), t)
	})
}

// Tokens lists the tokens of user ("" = all).
func (s *Store) Tokens(user string) (out []Token, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		out, err = list[Token](tx, bTokens, func(t *Token) bool { return user == "" || t.User == user })
		return err
	})
	return out, err
}

// DeleteToken removes a token.
func (s *Store) DeleteToken(id string) error { return s.del(bTokens, id) }

// --- clusters ---

// PutCluster creates (create=true, ErrExists if taken) or replaces (ErrNotFound if missing) a cluster.
// At most one cluster is the default: setting Default clears it elsewhere.
func (s *Store) PutCluster(c Cluster, create bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		old, err := get[Cluster](tx, bClusters, []byte(c.Name))
		switch {
		case create && err == nil:
			return ErrExists
		case !create && err != nil:
			return err
		case create:
			c.CreatedAt = s.now()
		default:
			c.CreatedAt = old.CreatedAt
		}
		c.UpdatedAt = s.now()
		if c.Default {
			all, err := list[Cluster](tx, bClusters, func(o *Cluster) bool { return o.Default && o.Name != c.Name })
			if err != nil {
				return err
			}
			for _, o := range all {
				o.Default = false
				if err := put(tx, bClusters, []byte(o.Name), o); err != nil {
					return err
				}
			}
		}
		return put(tx, bClusters, []byte(c.Name), c)
	})
}

// Cluster returns a cluster by name.
func (s *Store) Cluster(name string) (c Cluster, err error) {
	err = s.db.View(func(tx *bolt.Tx) error { c, err = get[Cluster](tx, bClusters, []byte(name)); return err })
	return c, err
}

// Clusters lists all clusters ordered by name.
func (s *Store) Clusters() (out []Cluster, err error) {
	err = s.db.View(func(tx *bolt.Tx) error { out, err = list[Cluster](tx, bClusters, nil); return err })
	return out, err
}

// DeleteCluster removes a cluster.
func (s *Store) DeleteCluster(name string) error { return s.del(bClusters, name) }

// --- schedulers and seed peers ---

// InstanceKind selects schedulers or seed peers.
type InstanceKind int

// Instance kinds.
const (
	KindScheduler InstanceKind = iota
	KindSeedPeer
)

func (k InstanceKind) bucket() []byte {
	if k == KindSeedPeer {
		return bSeedPeers
	}
	return bSchedulers
}

// Keepalive registers or refreshes an instance; the cluster must exist.
func (s *Store) Keepalive(k InstanceKind, in Instance) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bClusters).Get([]byte(in.Cluster)) == nil {
			return ErrNotFound
		}
		old, err := get[Instance](tx, k.bucket(), []byte(in.ID))
		if err == nil {
			in.CreatedAt = old.CreatedAt
		} else {
			in.CreatedAt = s.now()
		}
		in.LastSeen = s.now()
		in.State = ""
		return put(tx, k.bucket(), []byte(in.ID), in)
	})
}

// Instances lists instances of kind k (cluster "" = all); State is active when
// the last keepalive is younger than ttl.
func (s *Store) Instances(k InstanceKind, cluster string, ttl time.Duration) (out []Instance, err error) {
	now := s.now()
	err = s.db.View(func(tx *bolt.Tx) error {
		out, err = list[Instance](tx, k.bucket(), func(i *Instance) bool { return cluster == "" || i.Cluster == cluster })
		return err
	})
	for i := range out {
		out[i].State = StateInactive
		if now.Sub(out[i].LastSeen) < ttl {
			out[i].State = StateActive
		}
	}
	return out, err
}

// DeleteInstance removes an instance.
func (s *Store) DeleteInstance(k InstanceKind, id string) error { return s.del(k.bucket(), id) }

// --- applications ---

// PutApplication creates or replaces an application.
func (s *Store) PutApplication(a Application, create bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		old, err := get[Application](tx, bApplications, []byte(a.Name))
		switch {
		case create && err == nil:
			return ErrExists
		case !create && err != nil:
			return err
		case create:
			a.CreatedAt = s.now()
		default:
			a.CreatedAt = old.CreatedAt
		}
		a.UpdatedAt = s.now()
		return put(tx, bApplications, []byte(a.Name), a)
	})
}

// Application returns an application by name.
func (s *Store) Application(name string) (a Application, err error) {
	err = s.db.View(func(tx *bolt.Tx) error { a, err = get[Application](tx, bApplications, []byte(name)); return err })
	return a, err
}

// Applications lists all applications ordered by name.
func (s *Store) Applications() (out []Application, err error) {
	err = s.db.View(func(tx *bolt.Tx) error { out, err = list[Application](tx, bApplications, nil); return err })
	return out, err
}

// DeleteApplication removes an application.
func (s *Store) DeleteApplication(name string) error { return s.del(bApplications, name) }

// --- jobs ---

// CreateJob stores a new pending job and returns it with its ID.
func (s *Store) CreateJob(j Job) (Job, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bJobs)
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		j.ID, j.State = id, JobPending
		j.CreatedAt, j.UpdatedAt = s.now(), s.now()
		return put(tx, bJobs, u64(id), j)
	})
	return j, err
}

// Job returns a job by ID.
func (s *Store) Job(id uint64) (j Job, err error) {
	err = s.db.View(func(tx *bolt.Tx) error { j, err = get[Job](tx, bJobs, u64(id)); return err })
	return j, err
}

// UpdateJob applies fn to a job atomically.
func (s *Store) UpdateJob(id uint64, fn func(*Job) error) (j Job, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		j, err = get[Job](tx, bJobs, u64(id))
		if err != nil {
			return err
		}
		if err := fn(&j); err != nil {
			return err
		}
		j.ID, j.UpdatedAt = id, s.now()
		return put(tx, bJobs, u64(id), j)
	})
	return j, err
}

// Jobs lists jobs newest first, filtered by keep (nil = all).
func (s *Store) Jobs(keep func(*Job) bool) (out []Job, err error) {
	err = s.db.View(func(tx *bolt.Tx) error { out, err = list[Job](tx, bJobs, keep); return err })
	sort.Slice(out, func(a, b int) bool { return out[a].ID > out[b].ID })
	return out, err
}

// --- config documents ---

func cfgKey(name string, v uint64) []byte {
	return append(append([]byte(name), 0), u64(v)...)
}

// PutConfig stores a new version of the named document and returns it.
func (s *Store) PutConfig(name, author string, data map[string]any) (d ConfigDoc, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		var v uint64 = 1
		if last, err := latestConfig(tx, name); err == nil {
			v = last.Version + 1
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		d = ConfigDoc{Name: name, Version: v, Data: data, Author: author, CreatedAt: s.now()}
		return put(tx, bConfigs, cfgKey(name, v), d)
	})
	return d, err
}

func latestConfig(tx *bolt.Tx, name string) (ConfigDoc, error) {
	c := tx.Bucket(bConfigs).Cursor()
	prefix := append([]byte(name), 0)
	var last []byte
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, _ = c.Next() {
		last = append(last[:0], k...)
	}
	if last == nil {
		return ConfigDoc{}, ErrNotFound
	}
	return get[ConfigDoc](tx, bConfigs, last)
}

// Config returns version v of the named document (0 = latest).
func (s *Store) Config(name string, v uint64) (d ConfigDoc, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if v == 0 {
			d, err = latestConfig(tx, name)
		} else {
			d, err = get[ConfigDoc](tx, bConfigs, cfgKey(name, v))
		}
		return err
	})
	return d, err
}

// ConfigVersions lists all versions of the named document, oldest first.
func (s *Store) ConfigVersions(name string) (out []ConfigDoc, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		out, err = list[ConfigDoc](tx, bConfigs, func(d *ConfigDoc) bool { return d.Name == name })
		return err
	})
	return out, err
}

// --- audit ---

// Audit appends an entry to the audit log.
func (s *Store) Audit(e AuditEntry) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bAudit)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq, e.Time = seq, s.now()
		return put(tx, bAudit, u64(seq), e)
	})
}

// AuditLog returns up to limit entries with Seq < before (0 = newest), newest first.
func (s *Store) AuditLog(before uint64, limit int) (out []AuditEntry, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bAudit).Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			k, _ = c.Seek(u64(before))
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for ; k != nil && len(out) < limit; k, v = c.Prev() {
			if before != 0 && binary.BigEndian.Uint64(k) >= before {
				continue
			}
			e, err := get[AuditEntry](tx, bAudit, k)
			if err != nil {
				return err
			}
			_ = v
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// --- secrets ---

// Secret returns the named secret, creating it with gen() on first use.
func (s *Store) Secret(name string, gen func() ([]byte, error)) (val []byte, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bSecrets)
		if v := b.Get([]byte(name)); v != nil {
			val = append([]byte(nil), v...)
			return nil
		}
		if val, err = gen(); err != nil {
			return err
		}
		return b.Put([]byte(name), val)
	})
	return val, err
}

func (s *Store) del(bucket []byte, key string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucket).Get([]byte(key)) == nil {
			return ErrNotFound
		}
		return tx.Bucket(bucket).Delete([]byte(key))
	})
}
