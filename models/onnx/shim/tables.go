package shim

// IndexTables returns the number of rows of every stored table that the graph input named input
// indexes: the first dimension of each initializer read by a Gather (as data, axis 0) whose
// indices come from input, directly or through shape-only operations (Cast, Identity, Reshape,
// Unsqueeze, Squeeze, Flatten). A prompt input's embedding tables are found this way; an index
// past a table's last row would be clamped by the backend, so callers check their prompt count
// against these. It returns nil when the input feeds no such table.
func (g *Model) IndexTables(input string) []int {
	derived := map[string]bool{input: true}
	var rows []int
	for _, n := range g.nodes { // topological order: a node's inputs are derived before it
		switch n.op {
		case "Cast", "Identity", "Reshape", "Unsqueeze", "Squeeze", "Flatten":
			if len(n.in) > 0 && derived[n.in[0]] {
				for _, o := range n.out {
					derived[o] = true
				}
			}
		case "Gather":
			if len(n.in) < 2 || !derived[n.in[1]] || n.intAttr("axis", 0) != 0 {
				continue
			}
			if t, ok := g.inits[n.in[0]]; ok && t.Rank() > 0 {
				rows = append(rows, t.Shape().Dim(0))
			}
		}
	}
	return rows
}
