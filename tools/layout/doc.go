// Package layout holds the test that keeps the package dependencies the way
// DESIGN.md draws them.
package layout
