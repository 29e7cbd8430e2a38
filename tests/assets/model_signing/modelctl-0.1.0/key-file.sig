{
  "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
  "verificationMaterial": {
    "publicKey": {
      "hint": "721059eed75bc1231fea9d534aad4a09ec76796a95653bd81fd4e5460ab41dc3"
    },
    "tlogEntries": []
  },
  "dsseEnvelope": {
    "payload": "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJwcmVkaWNhdGUiOnsicmVzb3VyY2VzIjpbeyJhbGdvcml0aG0iOiJzaGEyNTYiLCJkaWdlc3QiOiJiZjU0N2M4NjBlMjJjNDFhNjJmOTJhODhlMGNiYTFmOTlhMjljYzhmYTU0MDc5MzFhMWIxMWU2YWY0ZjFhMGEzIiwibmFtZSI6Im1vZGVsLmJpbiJ9XSwic2VyaWFsaXphdGlvbiI6eyJhbGxvd19zeW1saW5rcyI6ZmFsc2UsImhhc2hfdHlwZSI6InNoYTI1NiIsImlnbm9yZV9wYXRocyI6WyIuZ2l0IiwiLmdpdGF0dHJpYnV0ZXMiLCIuZ2l0aHViIiwiLmdpdGlnbm9yZSJdLCJtZXRob2QiOiJmaWxlcyJ9fSwicHJlZGljYXRlVHlwZSI6Imh0dHBzOi8vbW9kZWxfc2lnbmluZy9zaWduYXR1cmUvdjEuMCIsInN1YmplY3QiOlt7ImRpZ2VzdCI6eyJzaGEyNTYiOiJhMzAwYjNlMjE0NzRjMWQ4OWFjNTVmNTg3MWY3YTcyODMxOGEwZGJmZGU0ZGM3NjAzZDIyMDNhOTM2NTM0MzBhIn0sIm5hbWUiOiJtb2RlbC5iaW4ifV19",
    "payloadType": "application/vnd.in-toto+json",
    "signatures": [
      {
        "sig": "MEYCIQDBOSsODQe/wH8JHo4dJr+XLL7Ggplt3hi42fVnJNkiqgIhAO3c4HOrIa7G0lvO9V/ZVjeVLgDTMP9ybdXTEUPvAMnZ",
        "keyid": ""
      }
    ]
  }
}
