{
  "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
  "verificationMaterial": {
    "publicKey": {
      "hint": "721059eed75bc1231fea9d534aad4a09ec76796a95653bd81fd4e5460ab41dc3"
    },
    "tlogEntries": []
  },
  "dsseEnvelope": {
    "payload": "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJwcmVkaWNhdGUiOnsicmVzb3VyY2VzIjpbeyJhbGdvcml0aG0iOiJzaGEyNTYiLCJkaWdlc3QiOiJhMTgzMmFlOWY3MTBmZjRhMDRjMGM5ZDNkMDNkYjUyZDkwMWVlMmM4MDc5NjViNjdkZjRiOGNkY2VlMWY3ZjdiIiwibmFtZSI6Imlnbm9yZS1tZSJ9LHsiYWxnb3JpdGhtIjoic2hhMjU2IiwiZGlnZXN0IjoiYWMwYTRiZGMyODdhNTMzNDhmNzUwMmQ5NjRhMTk3OWYwZDZhZTllMWQ5OTVkOGE0OTYwMGQ4OGQ1ZDYzMDY0ZCIsIm5hbWUiOiJzaWdubWUtMSJ9LHsiYWxnb3JpdGhtIjoic2hhMjU2IiwiZGlnZXN0IjoiMTEwMDA5ZGNlZTIxNjIwYjE2NmYzYWJmZWNiNWVmZjdhODczYmU3MjlkMWMyZDUzODIyZTdhY2M1ZjM0ZWI5YiIsIm5hbWUiOiJzaWdubWUtMiJ9LHsiYWxnb3JpdGhtIjoic2hhMjU2IiwiZGlnZXN0IjoiZjI3ODFlOTA1NjcwMTA0MjM0OWI0N2VlOGI3ZDc4M2MzNTM1NjRkMjYxZmZiN2RkOTQ2OWYwMTg2ZTJmYWZjZiIsIm5hbWUiOiJzdWJkaXIvYWRhcHRlci5iaW4ifV0sInNlcmlhbGl6YXRpb24iOnsiYWxsb3dfc3ltbGlua3MiOmZhbHNlLCJoYXNoX3R5cGUiOiJzaGEyNTYiLCJpZ25vcmVfcGF0aHMiOlsiLmdpdCIsIi5naXRhdHRyaWJ1dGVzIiwiLmdpdGh1YiIsIi5naXRpZ25vcmUiXSwibWV0aG9kIjoiZmlsZXMifX0sInByZWRpY2F0ZVR5cGUiOiJodHRwczovL21vZGVsX3NpZ25pbmcvc2lnbmF0dXJlL3YxLjAiLCJzdWJqZWN0IjpbeyJkaWdlc3QiOnsic2hhMjU2IjoiZDVjNDVjN2MzMTU1YjU5YzhiYTYxYzM4ZTg0MDc0ZTZlMTlhZmFhNzhkNjMxZjA1ZWYyMmZiMzVhM2NjMzE4MCJ9LCJuYW1lIjoibW9kZWwifV19",
    "payloadType": "application/vnd.in-toto+json",
    "signatures": [
      {
        "sig": "MEUCIQDcW9Alj6scpRwVTbdVk6/Jh+LtskhjsBFHaXuHBG6XJAIgZEKW3djP4Nm9nNHOpzI8SCbd20HJtImJQyb/AMZzlTQ=",
        "keyid": ""
      }
    ]
  }
}
