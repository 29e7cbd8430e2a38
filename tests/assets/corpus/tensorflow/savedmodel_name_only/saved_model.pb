{"this": "is not a SavedModel"}
