"""The switching function: one CSTA view over every line of every ready phone (pure logic)."""
