"""Bearer tokens of every configured issuer: Firebase, OIDC issuers, one HS256 issuer.

`chain.TokenChain` reads the token's `iss` (unverified, only to pick a verifier), and the
chosen verifier checks everything else; see each module's docstring.
"""
