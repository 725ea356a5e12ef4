package main

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
)

// Post is a blog post, as the database holds it and the API returns it.
type Post struct {
	ID         string `json:"id"`
	UserID     string `json:"user_id"`
	CategoryID string `json:"category_id"`
	Title      string `json:"title"`
	Body       string `json:"body"`
	Views      int    `json:"views"`
}

// Category is reference data: it rarely changes.
type Category struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// store is an in-memory stand-in for the database. It is safe for
// concurrent use; Posts are returned by value.
type store struct {
	mu         sync.RWMutex // protects posts
	posts      map[string]Post
	categories map[string]Category
}

// newStore seeds posts posts by users users in categories categories.
func newStore(posts, users, categories int) *store {
	s := &store{posts: make(map[string]Post), categories: make(map[string]Category)}
	for i := 1; i <= categories; i++ {
		id := fmt.Sprint(i)
		s.categories[id] = Category{ID: id, Name: "category " + id}
	}
	for i := 1; i <= posts; i++ {
		id := fmt.Sprint(i)
		s.posts[id] = Post{
			ID: id, UserID: fmt.Sprint(1 + i%users), CategoryID: fmt.Sprint(1 + i%categories),
			Title: "post " + id, Body: "the text of post " + id, Views: (i * 7919) % 1000,
		}
	}
	return s
}

func (s *store) Post(id string) (Post, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.posts[id]
	return p, ok
}

func (s *store) Posts(ids []string) map[string]Post {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]Post, len(ids))
	for _, id := range ids {
		if p, ok := s.posts[id]; ok {
			out[id] = p
		}
	}
	return out
}

// Update applies change to the post id and returns it before and after.
func (s *store) Update(id string, change func(*Post)) (before, after Post, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	before, ok = s.posts[id]
	if !ok {
		return before, before, false
	}
	after = before
	change(&after)
	after.ID, after.UserID = before.ID, before.UserID
	s.posts[id] = after
	return before, after, true
}

// sorted returns the posts that keep accepts, sorted by less.
func (s *store) sorted(keep func(Post) bool, less func(a, b Post) int) []Post {
	s.mu.RLock()
	var out []Post
	for _, p := range s.posts {
		if keep(p) {
			out = append(out, p)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, less)
	return out
}

func byID(a, b Post) int { return cmp.Or(cmp.Compare(len(a.ID), len(b.ID)), cmp.Compare(a.ID, b.ID)) }

// UserPosts returns page (from 1) of size posts of user.
func (s *store) UserPosts(user string, page, size int) []Post {
	all := s.sorted(func(p Post) bool { return p.UserID == user }, byID)
	start := min((page-1)*size, len(all))
	return all[start:min(start+size, len(all))]
}

func (s *store) CategoryPosts(cat string) []Post {
	return s.sorted(func(p Post) bool { return p.CategoryID == cat }, byID)
}

// Popular returns the ids of the n most viewed posts.
func (s *store) Popular(n int) []string {
	all := s.sorted(func(Post) bool { return true }, func(a, b Post) int { return cmp.Or(b.Views-a.Views, byID(a, b)) })
	ids := make([]string, 0, n)
	for _, p := range all[:min(n, len(all))] {
		ids = append(ids, p.ID)
	}
	return ids
}

// Recent returns the n posts with the highest ids.
func (s *store) Recent(n int) []Post {
	all := s.sorted(func(Post) bool { return true }, func(a, b Post) int { return byID(b, a) })
	return all[:min(n, len(all))]
}

func (s *store) Categories(ids []string) map[string]Category {
	out := make(map[string]Category, len(ids))
	for _, id := range ids {
		if c, ok := s.categories[id]; ok {
			out[id] = c
		}
	}
	return out
}

func (s *store) CategoryIDs() []string {
	ids := make([]string, 0, len(s.categories))
	for id := range s.categories {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), cmp.Compare(a, b)) })
	return ids
}

// RecentlyActive returns the users who wrote one of the n most recent posts.
func (s *store) RecentlyActive(n int) []string {
	var users []string
	for _, p := range s.Recent(n) {
		if !slices.Contains(users, p.UserID) {
			users = append(users, p.UserID)
		}
	}
	return users
}
