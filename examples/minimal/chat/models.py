from django.db import models


class Message(models.Model):
    author = models.CharField(max_length=40)
    text = models.CharField(max_length=500)
    created = models.DateTimeField(auto_now_add=True)

    def as_json(self) -> dict:
        return {"id": self.id, "author": self.author, "text": self.text,
                "created": self.created.isoformat()}
