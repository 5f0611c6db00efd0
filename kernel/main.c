// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-blk: the /dev/vhost-blk character device.
 *
 * Each open file is one virtio-blk device built on the vhost core: the core
 * owns the rings, the memory table, the dirty log and the worker thread; this
 * file owns the device's lifetime and its ioctls.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "vhost_blk.h"

/* Fairness limits per handle_kick run, as the other vhost devices use. */
#define VHOST_BLK_PKT_WEIGHT	256
#define VHOST_BLK_BYTE_WEIGHT	0x80000

static int vhost_blk_open(struct inode *inode, struct file *file)
{
	struct vhost_blk *blk;
	int i;

	/* Large because of the embedded virtqueues: allow vmalloc. */
	blk = kvzalloc(sizeof(*blk), GFP_KERNEL | __GFP_RETRY_MAYFAIL);
	if (!blk)
		return -ENOMEM;

	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++)
		blk->vq_ptrs[i] = &blk->vqs[i];

	vhost_dev_init(&blk->dev, blk->vq_ptrs, VHOST_BLK_MAX_QUEUES,
		       UIO_MAXIOV, VHOST_BLK_PKT_WEIGHT, VHOST_BLK_BYTE_WEIGHT,
		       true, NULL);

	file->private_data = blk;
	return 0;
}

static int vhost_blk_release(struct inode *inode, struct file *file)
{
	struct vhost_blk *blk = file->private_data;

	vhost_dev_stop(&blk->dev);
	vhost_dev_cleanup(&blk->dev);
	kvfree(blk);
	return 0;
}

/**
 * vhost_blk_set_features() - acknowledge the features the driver accepted
 * @blk: the device
 * @features: VIRTIO_F_* and VHOST_F_* bits, a subset of VHOST_BLK_FEATURES
 *
 * Return: 0, -EOPNOTSUPP for a feature not offered, or -EFAULT when dirty
 * logging is asked for but the log base is not accessible.
 */
static long vhost_blk_set_features(struct vhost_blk *blk, u64 features)
{
	int i;

	if (features & ~VHOST_BLK_FEATURES)
		return -EOPNOTSUPP;

	mutex_lock(&blk->dev.mutex);
	if ((features & BIT_ULL(VHOST_F_LOG_ALL)) &&
	    !vhost_log_access_ok(&blk->dev)) {
		mutex_unlock(&blk->dev.mutex);
		return -EFAULT;
	}
	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
		mutex_lock(&blk->vqs[i].mutex);
		blk->vqs[i].acked_features = features;
		mutex_unlock(&blk->vqs[i].mutex);
	}
	mutex_unlock(&blk->dev.mutex);
	return 0;
}

/**
 * vhost_blk_reset_owner() - forget the owner and every vring setting
 * @blk: the device
 *
 * Return: 0, -EPERM when the caller is not the owner, or -ENOMEM.
 */
static long vhost_blk_reset_owner(struct vhost_blk *blk)
{
	struct vhost_iotlb *umem;
	long ret;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		goto out;
	umem = vhost_dev_reset_owner_prepare();
	if (!umem) {
		ret = -ENOMEM;
		goto out;
	}
	vhost_dev_stop(&blk->dev);
	vhost_dev_reset_owner(&blk->dev, umem);
out:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

/*
 * The generic ioctls the vhost core implements. Anything else is unknown
 * here; passing it to the core would turn it into EPERM or ENOBUFS.
 */
static long vhost_blk_core_ioctl(struct vhost_blk *blk, unsigned int ioctl,
				 void __user *argp)
{
	long ret;

	switch (ioctl) {
	case VHOST_SET_OWNER:
	case VHOST_SET_MEM_TABLE:
	case VHOST_SET_LOG_BASE:
	case VHOST_SET_LOG_FD:
		mutex_lock(&blk->dev.mutex);
		ret = vhost_dev_ioctl(&blk->dev, ioctl, argp);
		mutex_unlock(&blk->dev.mutex);
		return ret;
	case VHOST_SET_VRING_NUM:
	case VHOST_SET_VRING_ADDR:
	case VHOST_SET_VRING_BASE:
	case VHOST_GET_VRING_BASE:
	case VHOST_SET_VRING_KICK:
	case VHOST_SET_VRING_CALL:
	case VHOST_SET_VRING_ERR:
	case VHOST_SET_VRING_ENDIAN:
	case VHOST_GET_VRING_ENDIAN:
	case VHOST_SET_VRING_BUSYLOOP_TIMEOUT:
	case VHOST_GET_VRING_BUSYLOOP_TIMEOUT:
		mutex_lock(&blk->dev.mutex);
		ret = vhost_vring_ioctl(&blk->dev, ioctl, argp);
		mutex_unlock(&blk->dev.mutex);
		return ret;
	default:
		return -ENOIOCTLCMD;
	}
}

static long vhost_blk_ioctl(struct file *file, unsigned int ioctl,
			    unsigned long arg)
{
	struct vhost_blk *blk = file->private_data;
	void __user *argp = (void __user *)arg;
	u64 features;

	switch (ioctl) {
	case VHOST_GET_FEATURES:
		features = VHOST_BLK_FEATURES;
		return copy_to_user(argp, &features, sizeof(features)) ?
		       -EFAULT : 0;
	case VHOST_SET_FEATURES:
		if (copy_from_user(&features, argp, sizeof(features)))
			return -EFAULT;
		return vhost_blk_set_features(blk, features);
	case VHOST_GET_BACKEND_FEATURES:
		features = 0;
		return copy_to_user(argp, &features, sizeof(features)) ?
		       -EFAULT : 0;
	case VHOST_SET_BACKEND_FEATURES:
		if (copy_from_user(&features, argp, sizeof(features)))
			return -EFAULT;
		return features ? -EOPNOTSUPP : 0;
	case VHOST_RESET_OWNER:
		return vhost_blk_reset_owner(blk);
	case VHOST_BLK_GET_ABI_VERSION:
		return put_user(VHOST_BLK_ABI_VERSION, (u32 __user *)argp);
	default:
		return vhost_blk_core_ioctl(blk, ioctl, argp);
	}
}

static const struct file_operations vhost_blk_fops = {
	.owner		= THIS_MODULE,
	.open		= vhost_blk_open,
	.release	= vhost_blk_release,
	.llseek		= noop_llseek,
	.unlocked_ioctl	= vhost_blk_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

static struct miscdevice vhost_blk_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "vhost-blk",
	.fops	= &vhost_blk_fops,
	.mode	= 0600,
};
module_misc_device(vhost_blk_misc);

MODULE_DESCRIPTION("Host kernel accelerator for virtio-blk");
MODULE_LICENSE("GPL");
