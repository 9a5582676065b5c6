from proj.tasks import compress_video, import_feed, where

print(compress_video.delay("cat.mp4").get(timeout=30))
print(import_feed.delay("http://example.org/feed").get(timeout=30))
print(where.delay().get(timeout=30))
print(where.apply_async(queue="images").get(timeout=30))
print(where.apply_async(routing_key="media.video", exchange="media").get(timeout=30))
