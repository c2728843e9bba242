// Package index holds the query API's secondary indexes as flat,
// pointer-free data: entries in slices addressed by integer slot, every
// string interned once in one byte arena, and ordered postings kept as
// sorted runs of slot numbers. A million entries are a few slices the
// garbage collector never has to walk, where a map of pointers to
// structs of strings would make every GC cycle mark millions of objects.
//
// The package is pure: no I/O, no clock. Its callers (query.Query)
// feed it from the projection stores' watchers and read records from the
// stores by the keys it returns. It imports only domain, and must never
// import projections or any I/O package.
package index
