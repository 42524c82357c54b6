"""Who may call the HTTP server: static bearer tokens and OAuth 2.1 JWTs, as SDK AccessTokens.

`static_tokens.py` checks HAILUO_HTTP_TOKEN, `jwks.py` fetches and caches the issuer's keys,
`jwt_verifier.py` checks a JWT against them, `verifier.py` tries each in turn, and
`middleware.py` guards every HTTP path with the result.
"""
