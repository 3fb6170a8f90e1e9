package wallet

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// hidden are the packages of this module whose types an app never sees:
// the SDK converts at its edge (docs: "Public SDK never exposes types from
// vault, p2p, internal").
var hidden = []string{
	"github.com/otpcash/otpcash/vault",
	"github.com/otpcash/otpcash/p2p",
	"github.com/otpcash/otpcash/internal/",
	"github.com/otpcash/otpcash/wallet/internal/",
}

func isHidden(path string) bool {
	for _, h := range hidden {
		if path == strings.TrimSuffix(h, "/") || strings.HasSuffix(h, "/") && strings.HasPrefix(path, h) {
			return true
		}
	}
	return false
}

// TestSurfaceHidesInsides: no exported type, field, function or method
// of package wallet names a type of a hidden package in its signature.
// (Values may come from them: the sentinel errors and protector names are
// vault's, shared so that errors.Is works across the layers.)
func TestSurfaceHidesInsides(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		imports := map[string]string{} // local name -> path
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			local := path[strings.LastIndex(path, "/")+1:]
			if imp.Name != nil {
				local = imp.Name.Name
			}
			imports[local] = path
		}
		check := func(what string, n ast.Node) {
			if n == nil {
				return
			}
			ast.Inspect(n, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if pkg, ok := sel.X.(*ast.Ident); ok && isHidden(imports[pkg.Name]) {
					t.Errorf("%s: %s shows %s.%s (%s)", fset.Position(sel.Pos()), what, pkg.Name, sel.Sel.Name, imports[pkg.Name])
				}
				return true
			})
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() || d.Recv != nil && !exportedRecv(d.Recv) {
					continue
				}
				check(d.Name.Name, d.Type)
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if !s.Name.IsExported() {
							continue
						}
						if st, ok := s.Type.(*ast.StructType); ok {
							for _, fld := range st.Fields.List {
								for _, n := range fld.Names {
									if n.IsExported() {
										check(s.Name.Name+"."+n.Name, fld.Type)
									}
								}
								if len(fld.Names) == 0 { // embedded: its fields are promoted
									check(s.Name.Name, fld.Type)
								}
							}
							continue
						}
						check(s.Name.Name, s.Type)
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() {
								check(n.Name, s.Type)
							}
						}
					}
				}
			}
		}
	}
}

// exportedRecv reports whether a method's receiver is an exported type.
func exportedRecv(recv *ast.FieldList) bool {
	typ := recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	if idx, ok := typ.(*ast.IndexExpr); ok {
		typ = idx.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.IsExported()
}
