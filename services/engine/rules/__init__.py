"""Rule strategies: the condition language, strategy definitions, vectorised evaluation.

Plain domain code: no gRPC, HTTP or SQL. `expr` parses condition text into an
AST (never Python's eval), `strategy` validates a whole definition, `evaluate`
turns ASTs into boolean series over bars (indicators from the Cython kernels).
"""
